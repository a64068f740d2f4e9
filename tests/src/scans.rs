//! Scans made from real PDFs, as a scanner or a phone would make them:
//! poppler's `pdftoppm` renders pages, ImageMagick adds noise, blur and skew,
//! and `img2pdf` puts the pictures into a PDF with no text layer. What they
//! should read as comes from `pdftotext` of the original pages.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A directory of scans for one test, removed when dropped.
pub struct Scanner {
    dir: tempfile::TempDir,
}

/// How a page is spoilt after it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// As rendered.
    Clean,
    /// Gaussian noise, a blur and a 1.5° skew: a worn scan.
    Degraded,
    /// A phone photo: a slight turn, noise, blur, and JPEG at quality 80.
    Photo,
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}; scripts/test installs poppler-utils, imagemagick and img2pdf"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// ImageMagick's own convert, not a shim ahead of it on the PATH.
fn convert() -> Command {
    let real = Path::new("/usr/bin/convert");
    Command::new(if real.exists() { real } else { Path::new("convert") })
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            dir: tempfile::tempdir().expect("a directory for scans"),
        }
    }
}

impl Scanner {
    /// Page `page` of `pdf` as a greyscale picture at `dpi`, in `condition`.
    pub fn page(&self, pdf: &Path, page: u32, dpi: u32, condition: Condition) -> PathBuf {
        let stem = format!("{}-{page}-{dpi}-{condition:?}", pdf.file_stem().unwrap().to_string_lossy());
        let base = self.dir.path().join(&stem);
        run(Command::new("pdftoppm")
            .args(["-r", &dpi.to_string(), "-f", &page.to_string(), "-l", &page.to_string()])
            .args(["-gray", "-png", "-singlefile"])
            .arg(pdf)
            .arg(&base));
        let rendered = self.dir.path().join(format!("{stem}.png"));
        let spoilt = |args: &[&str], extension: &str| {
            let out = self.dir.path().join(format!("{stem}-spoilt.{extension}"));
            // As a scanner does, the picture records its resolution.
            // A fixed seed: the same noise every run.
            run(convert()
                .args(["-seed", "2"])
                .arg(&rendered)
                .args(args)
                .args(["-density", &dpi.to_string(), "-units", "PixelsPerInch"])
                .arg(&out));
            out
        };
        match condition {
            Condition::Clean => rendered,
            Condition::Degraded => spoilt(
                &[
                    "-attenuate",
                    "0.4",
                    "+noise",
                    "Gaussian",
                    "-blur",
                    "0x1",
                    "-background",
                    "white",
                    "-rotate",
                    "1.5",
                    "-flatten",
                    "-colorspace",
                    "Gray",
                ],
                "png",
            ),
            Condition::Photo => spoilt(
                &[
                    "-background",
                    "white",
                    "-rotate",
                    "-2",
                    "-attenuate",
                    "0.3",
                    "+noise",
                    "Gaussian",
                    "-blur",
                    "0x0.8",
                    "-flatten",
                    "-quality",
                    "80",
                ],
                "jpg",
            ),
        }
    }

    /// An image-only PDF of `pictures`, one a page, at the resolution they
    /// were rendered at.
    pub fn pdf(&self, pictures: &[PathBuf]) -> Vec<u8> {
        run(Command::new("img2pdf").args(pictures).arg("-o").arg("-"))
    }

    /// A multi-page TIFF of `pictures`.
    pub fn tiff(&self, pictures: &[PathBuf]) -> Vec<u8> {
        let out = self.dir.path().join("pages.tif");
        run(convert().args(pictures).args(["-compress", "LZW"]).arg(&out));
        std::fs::read(out).unwrap()
    }

    /// The pages of `pdf` in order, each as a PDF of its own (poppler's
    /// `pdfseparate`), to put together with [`Scanner::unite`].
    pub fn separate(&self, pdf: &Path) -> Vec<PathBuf> {
        let stem = pdf.file_stem().unwrap().to_string_lossy().into_owned();
        let pattern = self.dir.path().join(format!("{stem}-page-%d.pdf"));
        run(Command::new("pdfseparate").arg(pdf).arg(&pattern));
        (1..)
            .map(|n| self.dir.path().join(format!("{stem}-page-{n}.pdf")))
            .take_while(|p| p.exists())
            .collect()
    }

    /// One PDF of `parts` in order (poppler's `pdfunite`).
    pub fn unite(&self, parts: &[PathBuf]) -> Vec<u8> {
        let out = self.dir.path().join("united.pdf");
        run(Command::new("pdfunite").args(parts).arg(&out));
        std::fs::read(out).unwrap()
    }

    /// Writes `bytes` as `name` in the directory and returns its path.
    pub fn save(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// The text of pages `first..=last` of `pdf` (poppler's `pdftotext`).
pub fn pdf_text(pdf: &Path, first: u32, last: u32) -> String {
    let out = run(Command::new("pdftotext")
        .args(["-q", "-f", &first.to_string(), "-l", &last.to_string()])
        .arg(pdf)
        .arg("-"));
    String::from_utf8_lossy(&out).into_owned()
}

/// The words of `text`, lower-cased: runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Word accuracy of `read` against `reference`: one minus the word error rate
/// (word-level edit distance over the reference's words), as OCR is scored.
pub fn word_accuracy(reference: &str, read: &str) -> f64 {
    let (errors, words) = word_errors(reference, read);
    1.0 - errors as f64 / words as f64
}

/// The word-level edit distance of `read` from `reference`, and the
/// reference's word count: summed over pages, they give the word accuracy of
/// a set of pages (errors over words, not a mean of the pages' rates).
pub fn word_errors(reference: &str, read: &str) -> (usize, usize) {
    let (reference, read) = (words(reference), words(read));
    assert!(!reference.is_empty(), "an empty reference");
    (strsim::generic_levenshtein(&reference, &read), reference.len())
}
