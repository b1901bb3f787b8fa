//! TensorBoard event files: every numeric field of a metrics record as a scalar summary
//! (TFRecord framing with masked CRC-32C, `Event` protocol buffers encoded by prost).

use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `tensorflow.Summary.Value` with only the scalar case.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// Scalar name, e.g. `step/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The scalars.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Event` with the file-version and summary cases.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `brain.Event:2` in a file's first event.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// Scalars of this step.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// CRC-32C as TFRecord stores it (rotated and offset).
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends events to one file of a TensorBoard log directory.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// Creates a new event file in `dir` (a new file per training session, as TensorBoard
    /// writers do; TensorBoard merges the files of a directory).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let t = now();
        let name = format!(
            "events.out.tfevents.{}.protoclust.{}",
            t as u64,
            std::process::id()
        );
        let path = dir.join(name);
        let mut w = Self {
            out: BufWriter::new(File::create(&path)?),
            path,
        };
        w.event(&Event {
            wall_time: t,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        let data = prost::Message::encode_to_vec(e);
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(&data)?;
        self.out.write_all(&masked_crc(&data).to_le_bytes())?;
        self.out.flush()
    }

    /// Writes `scalars` (tag, value) at `step`.
    pub fn scalars(&mut self, step: i64, scalars: &[(String, f32)]) -> std::io::Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        self.event(&Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(Summary {
                value: scalars
                    .iter()
                    .map(|(tag, v)| SummaryValue {
                        tag: tag.clone(),
                        simple_value: Some(*v),
                    })
                    .collect(),
            }),
        })
    }
}

/// The numeric fields of a metrics record as `kind/path` scalars (kNN entries as
/// `kind/knn/k{k}_T{T}/top1`), with the record's iteration as step.
pub fn record_scalars(record: &Value) -> (i64, Vec<(String, f32)>) {
    let kind = record
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("metrics");
    let step = record.get("iteration").and_then(Value::as_i64).unwrap_or(0);
    let mut out = Vec::new();
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, f32)>) {
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((prefix.to_string(), x as f32));
                }
            }
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| walk(&format!("{prefix}/{k}"), v, out)),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| {
                let name = match (v.get("k"), v.get("temperature")) {
                    (Some(k), Some(t)) => format!("k{k}_T{t}"),
                    _ => i.to_string(),
                };
                if let Value::Object(m) = v {
                    m.iter()
                        .filter(|(k, _)| *k != "k" && *k != "temperature")
                        .for_each(|(k, v)| walk(&format!("{prefix}/{name}/{k}"), v, out));
                }
            }),
            _ => {}
        }
    }
    if let Value::Object(m) = record {
        for (k, v) in m {
            if k != "kind" && k != "iteration" {
                walk(&format!("{kind}/{k}"), v, &mut out);
            }
        }
    }
    (step, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back the TFRecord framing, checking both CRCs.
    fn read_events(path: &Path) -> Vec<Event> {
        let bytes = std::fs::read(path).unwrap();
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(len_bytes), "length CRC");
            let data = &bytes[at + 12..at + 12 + len];
            let dcrc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(dcrc, masked_crc(data), "data CRC");
            out.push(<Event as prost::Message>::decode(data).unwrap());
            at += 16 + len;
        }
        out
    }

    #[test]
    fn crc32c_is_the_castagnoli_polynomial() {
        // RFC 3720's check value of "123456789".
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn records_round_trip_through_an_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        let rec = serde_json::json!({"kind": "epoch", "iteration": 78, "loss": 6.25,
            "clusters": {"used": 505, "entropy": 5.5},
            "knn": [{"k": 200, "temperature": 0.1, "top1": 30.5, "top5": 80.0}]});
        let (step, scalars) = record_scalars(&rec);
        assert_eq!(step, 78);
        w.scalars(step, &scalars).unwrap();
        let events = read_events(w.path());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(events[1].step, 78);
        let values = &events[1].summary.as_ref().unwrap().value;
        let get = |tag: &str| {
            values
                .iter()
                .find(|v| v.tag == tag)
                .and_then(|v| v.simple_value)
        };
        assert_eq!(get("epoch/loss"), Some(6.25));
        assert_eq!(get("epoch/clusters/used"), Some(505.0));
        assert_eq!(get("epoch/knn/k200_T0.1/top1"), Some(30.5));
        assert_eq!(get("epoch/knn/k200_T0.1/k"), None);
    }
}
