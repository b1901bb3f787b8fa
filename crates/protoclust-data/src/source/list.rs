//! A list file naming the images: one path per line, optionally `path,label` (CSV); relative
//! paths are taken from the list's own folder. Blank lines and `#` comments are skipped, as is a
//! `path` / `path,label` header. Labels are integers (used as given) or class names (numbered in
//! sorted order); every line has one or none does.

use super::files::ImageFiles;
use super::folder::Skipped;
use crate::DataError;
use std::collections::BTreeMap;
use std::path::Path;

fn format_error(list: &Path, line: usize, reason: String) -> DataError {
    DataError::Format {
        path: list.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    }
}

/// Class ids for the raw labels: integers as given when every label is one, else names
/// numbered in sorted order. Returns (ids, class names).
fn number_labels(raw: &[String]) -> (Vec<u32>, Vec<String>) {
    let ints: Option<Vec<u32>> = raw.iter().map(|l| l.parse::<u32>().ok()).collect();
    if let Some(ids) = ints {
        let n = ids.iter().max().map_or(0, |m| *m as usize + 1);
        return (ids, (0..n).map(|i| i.to_string()).collect());
    }
    let mut names: BTreeMap<&str, u32> = raw.iter().map(|l| (l.as_str(), 0)).collect();
    for (i, v) in names.values_mut().enumerate() {
        *v = i as u32;
    }
    let ids = raw.iter().map(|l| names[l.as_str()]).collect();
    (ids, names.keys().map(|k| k.to_string()).collect())
}

impl ImageFiles {
    /// Reads the list file `list`; every listed file must exist.
    pub fn open_list(list: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(list).map_err(|error| DataError::Io {
            path: list.to_path_buf(),
            error,
        })?;
        let base = list.parent().unwrap_or(Path::new(""));
        let mut files = Vec::new();
        let mut raw_labels = Vec::new();
        let mut labelled: Option<(bool, usize)> = None;
        let mut missing: Option<(usize, usize)> = None; // (count, first line)
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if files.is_empty()
                && labelled.is_none()
                && matches!(line.to_ascii_lowercase().as_str(), "path" | "path,label")
            {
                continue;
            }
            // The label follows the last comma, so paths may contain commas.
            let (path, label) = match line.rsplit_once(',') {
                Some((p, l)) => (p.trim(), Some(l.trim())),
                None => (line, None),
            };
            match labelled {
                None => labelled = Some((label.is_some(), no)),
                Some((has, first)) if has != label.is_some() => {
                    let (this, that) = if has { ("no", "a") } else { ("a", "no") };
                    return Err(format_error(
                        list,
                        no,
                        format!(
                            "has {this} label but line {first} has {that} label: give every \
                             line a label or none"
                        ),
                    ));
                }
                Some(_) => {}
            }
            if path.is_empty() {
                return Err(format_error(list, no, "empty path".into()));
            }
            if let Some(l) = label {
                if l.is_empty() {
                    return Err(format_error(list, no, "empty label after the comma".into()));
                }
                raw_labels.push(l.to_string());
            }
            let file = base.join(path);
            if !file.is_file() {
                let m = missing.get_or_insert((0, no));
                m.0 += 1;
            }
            files.push(file);
        }
        if let Some((count, first)) = missing {
            return Err(format_error(
                list,
                first,
                format!(
                    "{} does not exist ({count} of {} listed files are missing; paths are \
                     relative to the list's folder)",
                    files_at_line(&text, first),
                    files.len()
                ),
            ));
        }
        if files.is_empty() {
            return Err(DataError::Format {
                path: list.to_path_buf(),
                reason: "lists no images (one path per line, optionally `path,label`)".into(),
            });
        }
        let (labels, classes) = if raw_labels.is_empty() {
            (None, Vec::new())
        } else {
            let (ids, classes) = number_labels(&raw_labels);
            (Some(ids), classes)
        };
        Ok(Self::new(files, labels, classes, Skipped::default()))
    }
}

/// The path written on line `no` (1-based) of the list text.
fn files_at_line(text: &str, no: usize) -> String {
    let line = text.lines().nth(no - 1).unwrap_or("").trim();
    line.rsplit_once(',')
        .map_or(line, |(p, _)| p.trim())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;
    use std::fs;

    fn png(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn paths_are_relative_to_the_list_and_names_become_sorted_classes() {
        let t = tempfile::tempdir().unwrap();
        png(&t.path().join("imgs/a.png"));
        png(&t.path().join("imgs/b,c.png"));
        png(&t.path().join("other.png"));
        let list = t.path().join("sub/../train.csv");
        fs::create_dir_all(t.path().join("sub")).unwrap();
        fs::write(
            &list,
            "path,label\n# curated\nimgs/a.png,dog\n\nimgs/b,c.png, cat\nother.png,dog\n",
        )
        .unwrap();
        let l = ImageFiles::open_list(&list).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l.classes(), ["cat", "dog"]);
        assert_eq!(
            (0..3).map(|i| l.label(i).unwrap()).collect::<Vec<_>>(),
            [1, 0, 1]
        );
        assert!(l.path(1).unwrap().ends_with("imgs/b,c.png"));
        assert_eq!(l.get(2).unwrap().image.height, 2);
    }

    #[test]
    fn integer_labels_are_kept_and_unlabelled_lists_have_none() {
        let t = tempfile::tempdir().unwrap();
        png(&t.path().join("a.png"));
        fs::write(t.path().join("l.txt"), "a.png,4\na.png,2\n").unwrap();
        let l = ImageFiles::open_list(&t.path().join("l.txt")).unwrap();
        assert_eq!(
            (l.label(0), l.label(1), l.num_classes()),
            (Some(4), Some(2), Some(5))
        );
        fs::write(t.path().join("u.txt"), "a.png\n").unwrap();
        let u = ImageFiles::open_list(&t.path().join("u.txt")).unwrap();
        assert_eq!((u.len(), u.num_classes(), u.label(0)), (1, None, None));
    }

    #[test]
    fn bad_lists_name_the_line_and_what_was_expected() {
        let t = tempfile::tempdir().unwrap();
        png(&t.path().join("a.png"));
        let check = |text: &str, want: &[&str]| {
            fs::write(t.path().join("l.txt"), text).unwrap();
            let e = ImageFiles::open_list(&t.path().join("l.txt"))
                .unwrap_err()
                .to_string();
            for w in want {
                assert!(e.contains(w), "{e:?} lacks {w:?}");
            }
        };
        check(
            "a.png,1\na.png\n",
            &["l.txt", "line 2", "no label", "line 1"],
        );
        check(
            "a.png\nmissing.png\ngone.png\n",
            &["line 2", "missing.png", "2 of 3"],
        );
        check("a.png,\n", &["line 1", "empty label"]);
        check("# nothing\n\n", &["lists no images"]);
        let e = ImageFiles::open_list(&t.path().join("nope.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.txt"), "{e}");
    }
}
