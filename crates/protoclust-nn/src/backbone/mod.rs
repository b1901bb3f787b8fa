//! Convolutional backbones returning both the pooled vector and the last feature map.

pub mod resnet;

pub use resnet::{resnet, BackboneError, Block, Downsample, ResNet, ResNetConfig, ResNetOutput};
