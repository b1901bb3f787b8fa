//! Image folders with torchvision `ImageFolder` semantics: `root/<class>/**/<image>` (labelled:
//! the first level names the classes, images are found at any depth below each), or every image
//! anywhere under `root` (unlabelled). Symbolic links are followed; hidden entries and files
//! that are not images are skipped and counted ([`Skipped`]); the order is sorted and stable.

use super::files::ImageFiles;
use crate::DataError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use walkdir::{DirEntry, WalkDir};

/// File extensions (lower case) read as images.
pub const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "pnm"];

/// How the tree under the root is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLayout {
    /// Sub-folders of the root are classes; with none, the images directly under the root form
    /// an unlabelled set.
    Classes,
    /// Every image anywhere under the root, no labels.
    Unlabelled,
}

/// Files a listing passed over because they are not images it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Count by extension (`""` for none; hidden files and files outside any class folder
    /// under their own keys).
    by_kind: BTreeMap<String, usize>,
}

impl Skipped {
    fn add(&mut self, kind: String) {
        *self.by_kind.entry(kind).or_default() += 1;
    }

    fn add_file(&mut self, path: &Path) {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some(e) => format!(".{}", e.to_ascii_lowercase()),
            None => "no extension".into(),
        };
        self.add(kind);
    }

    /// Number of files skipped.
    pub fn count(&self) -> usize {
        self.by_kind.values().sum()
    }
}

impl fmt::Display for Skipped {
    /// `12 files that are not images (.txt: 10, hidden: 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} files that are not images", self.count())?;
        let parts: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// Whether `path` has one of [`EXTENSIONS`].
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn is_hidden(e: &DirEntry) -> bool {
    e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.')
}

fn walk_error(root: &Path, e: walkdir::Error) -> DataError {
    let path = e.path().unwrap_or(root).to_path_buf();
    if let Some(ancestor) = e.loop_ancestor() {
        return DataError::Format {
            path,
            reason: format!("symbolic link loop (points back to {})", ancestor.display()),
        };
    }
    match e.into_io_error() {
        Some(error) => DataError::Io { path, error },
        None => DataError::Format {
            path,
            reason: "cannot list this directory".into(),
        },
    }
}

/// Images at any depth under `dir` in sorted depth-first order, links followed; hidden files
/// and directories and non-image files are skipped into `skipped`.
fn images_under(dir: &Path, skipped: &mut Skipped) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let walk = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    // Hidden directories are not descended into; hidden files are counted below.
    let walk = walk.filter_entry(|e| !(is_hidden(e) && e.file_type().is_dir()));
    for entry in walk {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        if !entry.file_type().is_file() {
            continue;
        }
        if is_hidden(&entry) {
            skipped.add("hidden".into());
        } else if is_image(entry.path()) {
            out.push(entry.into_path());
        } else {
            skipped.add_file(entry.path());
        }
    }
    Ok(out)
}

/// The first-level entries of `root`, sorted: (non-hidden directories, non-hidden files);
/// hidden files are counted into `skipped`. Links are followed.
fn first_level(
    root: &Path,
    skipped: &mut Skipped,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let walk = WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .max_depth(1)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let hidden = is_hidden(&entry);
        if entry.file_type().is_dir() {
            if !hidden {
                dirs.push(entry.into_path());
            }
        } else if hidden {
            skipped.add("hidden".into());
        } else {
            files.push(entry.into_path());
        }
    }
    Ok((dirs, files))
}

fn no_images(root: &Path, skipped: &Skipped, what: &str) -> DataError {
    let mut reason = format!("no images ({}) {what}", EXTENSIONS.join(", "));
    if skipped.count() > 0 {
        reason.push_str(&format!("; skipped {skipped}"));
    }
    DataError::Format {
        path: root.to_path_buf(),
        reason,
    }
}

impl ImageFiles {
    /// Lists the image folder `root` in the given layout.
    pub fn open_folder(root: &Path, layout: FolderLayout) -> Result<Self, DataError> {
        if !root.is_dir() {
            return Err(match std::fs::metadata(root) {
                Err(error) => DataError::Io {
                    path: root.to_path_buf(),
                    error,
                },
                Ok(_) => DataError::Format {
                    path: root.to_path_buf(),
                    reason: "is a file; an image folder is a directory".into(),
                },
            });
        }
        let mut skipped = Skipped::default();
        if layout == FolderLayout::Unlabelled {
            let files = images_under(root, &mut skipped)?;
            if files.is_empty() {
                return Err(no_images(root, &skipped, "anywhere below"));
            }
            return Ok(Self::new(files, None, Vec::new(), skipped));
        }
        let (class_dirs, top_files) = first_level(root, &mut skipped)?;
        if class_dirs.is_empty() {
            let mut files = Vec::new();
            for f in top_files {
                if is_image(&f) {
                    files.push(f);
                } else {
                    skipped.add_file(&f);
                }
            }
            if files.is_empty() {
                return Err(no_images(root, &skipped, "and no class sub-folders"));
            }
            return Ok(Self::new(files, None, Vec::new(), skipped));
        }
        // As torchvision: files beside the class folders belong to no class.
        for _ in &top_files {
            skipped.add("outside a class folder".into());
        }
        let mut files = Vec::new();
        let mut labels = Vec::new();
        let mut classes = Vec::new();
        for (c, dir) in class_dirs.iter().enumerate() {
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            for f in images_under(dir, &mut skipped)? {
                files.push(f);
                labels.push(c as u32);
            }
        }
        if files.is_empty() {
            return Err(no_images(root, &skipped, "in any class sub-folder"));
        }
        Ok(Self::new(files, Some(labels), classes, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;
    use std::fs;

    fn png(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(4, 3, image::Rgb([9, 8, 7]))
            .save(path)
            .unwrap();
    }

    fn names(f: &ImageFiles, root: &Path) -> Vec<String> {
        (0..f.len())
            .map(|i| {
                let p = f.path(i).unwrap().strip_prefix(root).unwrap();
                p.to_string_lossy().replace('\\', "/")
            })
            .collect()
    }

    #[test]
    fn nested_class_folders_are_read_recursively_and_junk_is_counted() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        png(&r.join("n02/images/b.PNG"));
        png(&r.join("n02/images/a.png"));
        png(&r.join("n01/images/deep/c.png"));
        fs::write(r.join("n01/n01_boxes.txt"), "0 0 1 1").unwrap();
        fs::write(r.join("n01/images/.DS_Store"), "x").unwrap();
        png(&r.join(".hidden_class/x.png"));
        fs::write(r.join("wnids.txt"), "n01\nn02").unwrap();
        let f = ImageFiles::open_folder(r, FolderLayout::Classes).unwrap();
        assert_eq!(f.classes(), ["n01", "n02"]);
        assert_eq!(
            names(&f, r),
            [
                "n01/images/deep/c.png",
                "n02/images/a.png",
                "n02/images/b.PNG"
            ]
        );
        assert_eq!(
            (0..3).map(|i| f.label(i).unwrap()).collect::<Vec<_>>(),
            [0, 1, 1]
        );
        assert_eq!(f.skipped().count(), 3, "{}", f.skipped());
        assert_eq!(
            f.skipped().to_string(),
            "3 files that are not images (.txt: 1, hidden: 1, outside a class folder: 1)"
        );
        assert_eq!(f.get(2).unwrap().image.width, 4);
    }

    #[test]
    fn unlabelled_layout_takes_every_image_at_any_depth() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        png(&r.join("top.png"));
        png(&r.join("a/b/c/deep.png"));
        fs::write(r.join("a/notes.md"), "x").unwrap();
        let f = ImageFiles::open_folder(r, FolderLayout::Unlabelled).unwrap();
        assert_eq!(names(&f, r), ["a/b/c/deep.png", "top.png"]);
        assert_eq!(f.num_classes(), None);
        assert_eq!(f.label(0), None);
        assert_eq!(f.skipped().count(), 1);
    }

    #[test]
    fn a_flat_folder_is_unlabelled_in_the_classes_layout() {
        let t = tempfile::tempdir().unwrap();
        png(&t.path().join("x.png"));
        let f = ImageFiles::open_folder(t.path(), FolderLayout::Classes).unwrap();
        assert_eq!((f.len(), f.num_classes()), (1, None));
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_followed_and_loops_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        png(&t.path().join("elsewhere/cats/c.png"));
        fs::create_dir_all(&r).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere/cats"), r.join("cats")).unwrap();
        let f = ImageFiles::open_folder(&r, FolderLayout::Classes).unwrap();
        assert_eq!((f.classes(), f.len()), (&["cats".to_string()][..], 1));
        std::os::unix::fs::symlink(
            t.path().join("elsewhere"),
            t.path().join("elsewhere/cats/up"),
        )
        .unwrap();
        let e = ImageFiles::open_folder(&r, FolderLayout::Classes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link loop"), "{e}");
    }

    #[test]
    fn empty_trees_and_files_say_what_was_expected() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("cls")).unwrap();
        fs::write(t.path().join("cls/readme.txt"), "x").unwrap();
        let e = ImageFiles::open_folder(t.path(), FolderLayout::Classes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no images") && e.contains("class sub-folder"),
            "{e}"
        );
        assert!(e.contains("skipped 1"), "{e}");
        let e = ImageFiles::open_folder(&t.path().join("cls/readme.txt"), FolderLayout::Classes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a file"), "{e}");
    }
}
