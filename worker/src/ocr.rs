//! OCR: scanned PDF pages and images, read by Tesseract.
//!
//! Everything that decodes untrusted pixels runs in a child process, one per
//! page and per step, started through util-linux's `prlimit` with an address
//! space of `FOLIO_OCR_MEMORY_MB`, CPU time of `FOLIO_OCR_PAGE_TIMEOUT_SECS`
//! and no core files, with nothing of the worker's environment but `PATH`; the
//! worker kills it when the same time has passed on the wall clock. A page
//! that crashes its reader fails its document (`OCR_FAILED`), never the worker.
//! A child per page rather than a binding: Tesseract's start-up (its language
//! model) costs about 0.25 s against 3 to 4 s to read an A4 page at 300 dpi,
//! and the binding would put leptonica's decoders in the worker's own process.
//!
//! The steps, in a temporary directory of the document's own:
//! - [`Ocr::prepare`] looks before anything decodes: an image's kind, pages
//!   and sizes from its headers (`folio_parse::parse::image::survey`), a PDF's
//!   page sizes and pictures from poppler's `pdfinfo` and `pdfimages`; too
//!   many pages or pixels refuse the document (`TOO_MANY_PAGES`,
//!   `IMAGE_TOO_LARGE`).
//! - [`Reading::read`] reads one page. A PDF page that is one scanned
//!   picture is read as stored (poppler's `pdfimages`: resampling it costs
//!   accuracy); any other PDF page is rendered by poppler's `pdftoppm` to a
//!   greyscale PNG, at its largest picture's resolution or at
//!   `FOLIO_OCR_DPI`, lowered for a page so large that it would pass
//!   `FOLIO_OCR_MAX_PIXELS`. Libtiff's `tiffcp` takes one page out
//!   of a multi-page TIFF, and `tesseract` reads it, writing its words with
//!   their confidence (TSV, turned into paragraphs by
//!   `folio_parse::parse::ocr`) and a one-page PDF: the picture with the text
//!   invisible over it.
//! - [`Reading::searchable_pdf`] puts the pages together with `pdfunite`,
//!   taking the pages that had text from the original (`pdfseparate`).
//!
//! The caller reads page by page, so it reports progress and honours cancel
//! between pages.

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;
use folio_core::config::OcrConfig;
use folio_parse::parse::{
    ParseError,
    image::{ImageKind, survey},
    ocr::{OcrPage, OcrReport, RecognisedPage, read_tsv},
};
use nix::sys::signal::Signal;

use crate::sandbox::ParseFailure;

/// Tesseract's `thresholding_method`s: global Otsu (its default) and local
/// Sauvola.
const THRESHOLD_OTSU: u32 = 0;
const THRESHOLD_SAUVOLA: u32 = 2;

/// How much of a child's standard error is kept for a failure message.
const STDERR_KEPT: usize = 512;

/// How the worker runs OCR.
#[derive(Debug, Clone)]
pub struct Ocr {
    config: OcrConfig,
}

/// What to read.
#[derive(Debug)]
pub enum Source {
    /// These pages of a PDF of `page_count` pages.
    Pdf { pages: Vec<u32>, page_count: u32 },
    /// Every page of an image.
    Image,
}

/// One page to read and how.
#[derive(Debug)]
struct Page {
    number: u32,
    /// PDF: the resolution to render it at, or of its scanned picture.
    dpi: u32,
    /// PDF: the page is one scanned picture, read as it is stored rather
    /// than rendered (rendering resamples it, and OCR reads the resampled
    /// picture worse: 88% of words against 95% on a worn scan).
    picture: bool,
}

/// A document being read, page by page.
#[derive(Debug)]
pub struct Reading<'a> {
    ocr: &'a Ocr,
    dir: tempfile::TempDir,
    source: PathBuf,
    /// None for a PDF.
    image: Option<ImageKind>,
    page_count: u32,
    pages: Vec<Page>,
    /// The one-page searchable PDF of each page read so far, by page number.
    read: Vec<(u32, PathBuf)>,
    report: OcrReport,
}

impl Ocr {
    pub fn new(config: OcrConfig) -> Self {
        Ocr { config }
    }

    /// Checks that the programs OCR needs are installed and that Tesseract has
    /// every language of `FOLIO_OCR_LANGUAGES`; a worker that cannot read a
    /// scan says so when it starts, not on the first scanned document.
    pub async fn check(&self) -> anyhow::Result<()> {
        let output = tokio::process::Command::new("tesseract")
            .arg("--list-langs")
            .output()
            .await
            .context("running `tesseract --list-langs` (install Tesseract, Debian's tesseract-ocr)")?;
        let listed = String::from_utf8_lossy(&output.stdout);
        let installed: Vec<&str> = listed.lines().skip(1).map(str::trim).collect();
        for language in self.config.languages.split('+') {
            anyhow::ensure!(
                installed.contains(&language),
                "FOLIO_OCR_LANGUAGES names {language:?}, which Tesseract does not have (installed: {}); \
                 install its language package (tesseract-ocr-{language})",
                installed.join(", ")
            );
        }
        for program in ["pdfinfo", "pdfimages", "pdftoppm", "pdfseparate", "pdfunite", "tiffcp", "prlimit"] {
            tokio::process::Command::new(program)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .with_context(|| format!("running {program} (poppler-utils, libtiff-tools and util-linux are needed for OCR)"))?;
        }
        Ok(())
    }

    /// Writes `bytes` into a new temporary directory and plans the pages to
    /// read, refusing what is over the limits before anything decodes it.
    pub async fn prepare(&self, source: Source, bytes: &[u8]) -> Result<Reading<'_>, ParseFailure> {
        let dir = tempfile::Builder::new()
            .prefix("folio-ocr-")
            .tempdir()
            .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("making a directory for OCR: {e}")))?;
        let (image, page_count, pages) = match source {
            Source::Image => {
                let surveyed = survey(bytes, self.config.max_pages, self.config.max_pixels).map_err(refused)?;
                let pages = (1..=surveyed.pages.len() as u32)
                    .map(|number| Page {
                        number,
                        dpi: 0,
                        picture: false,
                    })
                    .collect::<Vec<_>>();
                (Some(surveyed.kind), pages.len() as u32, pages)
            }
            Source::Pdf { pages, page_count } => (
                None,
                page_count,
                pages
                    .into_iter()
                    .map(|number| Page {
                        number,
                        dpi: 0,
                        picture: false,
                    })
                    .collect(),
            ),
        };
        let name = format!("source.{}", image.map_or("pdf", ImageKind::extension));
        let source = dir.path().join(name);
        tokio::fs::write(&source, bytes)
            .await
            .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("writing the document for OCR: {e}")))?;
        let mut reading = Reading {
            ocr: self,
            dir,
            source,
            image,
            page_count,
            pages,
            read: Vec::new(),
            report: OcrReport {
                languages: self.config.languages.clone(),
                dpi: self.config.dpi,
                pages: Vec::new(),
            },
        };
        if image.is_none() {
            // Counted once blank and figure pages are left out: only pages
            // that will be read count against the limit.
            reading.plan_pdf_resolutions().await?;
            if reading.pages.len() > self.config.max_pages {
                return Err(refused(ParseError::TooManyPages {
                    max: self.config.max_pages,
                }));
            }
        }
        Ok(reading)
    }

    /// Runs `program` with `args` in `dir` under the page limits; its standard
    /// output on success. `what` names the step in failure messages.
    async fn run(&self, dir: &Path, program: &str, args: Vec<OsString>, what: &str, wall: Duration) -> Result<Vec<u8>, ParseFailure> {
        let cpu = wall.as_secs().max(1);
        let mut command = tokio::process::Command::new("prlimit");
        command
            .arg(format!("--as={}", self.config.memory_bytes))
            // SIGXCPU at the soft limit (OCR_TIME), SIGKILL a second later.
            .arg(format!("--cpu={cpu}:{}", cpu + 1))
            .arg("--core=0")
            .arg("--")
            .arg(program)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
            // Tesseract's OpenMP threads fight over a worker's cores; one
            // page a thread reads faster in all.
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("cannot start {program} for OCR: {e}")))?;
        let output = match tokio::time::timeout(wall, child.wait_with_output()).await {
            Err(_) => {
                return Err(ParseFailure::Permanent {
                    code: "OCR_TIME",
                    message: format!("{what} took longer than {}s and was stopped", wall.as_secs()),
                });
            }
            Ok(Err(e)) => return Err(ParseFailure::Transient(anyhow::anyhow!("waiting for {program}: {e}"))),
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr[output.stderr.len().saturating_sub(STDERR_KEPT)..]).into_owned();
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        let signal = output.status.signal().and_then(|s| Signal::try_from(s).ok());
        Err(match signal {
            Some(Signal::SIGXCPU) => ParseFailure::Permanent {
                code: "OCR_TIME",
                message: format!("{what} used up its {cpu}s of CPU time and was stopped"),
            },
            Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                ParseFailure::Transient(anyhow::anyhow!("{program} was stopped by {signal:?} (the host is stopping)"))
            }
            _ => {
                let how = match signal {
                    Some(signal) => format!("was killed by {signal}"),
                    None => format!("failed ({})", output.status),
                };
                ParseFailure::Permanent {
                    code: "OCR_FAILED",
                    message: format!("{what}: {program} {how}: {last}"),
                }
            }
        })
    }

    /// The CPU and wall-clock bound of one step of one page.
    fn page_wall(&self) -> Duration {
        self.config.page_timeout
    }
}

impl Reading<'_> {
    /// The page numbers to read, in order.
    pub fn pages(&self) -> Vec<u32> {
        self.pages.iter().map(|p| p.number).collect()
    }

    /// What has been read so far.
    pub fn report(&self) -> &OcrReport {
        &self.report
    }

    /// Reads the `index`th page to read.
    pub async fn read(&mut self, index: usize) -> Result<RecognisedPage, ParseFailure> {
        let Page { number, dpi, picture } = self.pages[index];
        let dir = self.dir.path().to_owned();
        let image = match self.image {
            None if picture => {
                let prefix = format!("picture-{number}");
                let args = ["-f".into(), number.to_string(), "-l".into(), number.to_string(), "-png".into()]
                    .into_iter()
                    .map(OsString::from)
                    .chain([self.source.clone().into_os_string(), prefix.clone().into()])
                    .collect();
                let what = format!("taking out the picture of page {number}");
                self.ocr.run(&dir, "pdfimages", args, &what, self.ocr.page_wall()).await?;
                dir.join(format!("{prefix}-000.png"))
            }
            None => {
                let base = format!("page-{number}");
                let args = [
                    "-r".into(),
                    dpi.to_string(),
                    "-f".into(),
                    number.to_string(),
                    "-l".into(),
                    number.to_string(),
                    "-png".into(),
                    "-gray".into(),
                    "-singlefile".into(),
                ]
                .into_iter()
                .map(OsString::from)
                .chain([self.source.clone().into_os_string(), base.clone().into()])
                .collect();
                let what = format!("rendering page {number}");
                self.ocr.run(&dir, "pdftoppm", args, &what, self.ocr.page_wall()).await?;
                dir.join(format!("{base}.png"))
            }
            Some(ImageKind::Tiff) if self.page_count > 1 => {
                let page = dir.join(format!("page-{number}.tif"));
                let mut from = self.source.clone().into_os_string();
                from.push(format!(",{}", number - 1));
                let what = format!("taking page {number} out of the TIFF");
                self.ocr
                    .run(&dir, "tiffcp", vec![from, page.clone().into()], &what, self.ocr.page_wall())
                    .await?;
                page
            }
            Some(_) => self.source.clone(),
        };
        // Tesseract binarises the page before it finds the text. On a worn
        // scan either method can take a paragraph for a picture and drop it
        // (measured: 75% of words read one way, 99% the other, and the other
        // way round on another page); with two passes both are run and the
        // reading with the greater sum of word confidences is kept.
        let mut best: Option<(RecognisedPage, PathBuf)> = None;
        for method in [THRESHOLD_OTSU, THRESHOLD_SAUVOLA]
            .into_iter()
            .take(self.ocr.config.passes as usize)
        {
            let out = format!("ocr-{number}-{method}");
            let mut args: Vec<OsString> = vec![
                image.clone().into(),
                out.clone().into(),
                "-l".into(),
                self.ocr.config.languages.clone().into(),
            ];
            if self.image.is_none() {
                // A PDF page's resolution is known (rendered, or its picture's
                // as placed); photos and scans say theirs, or Tesseract
                // estimates it from the text.
                args.extend(["--dpi".into(), dpi.to_string().into()]);
            }
            args.extend([
                "-c".into(),
                format!("thresholding_method={method}").into(),
                "tsv".into(),
                "pdf".into(),
            ]);
            let what = format!("reading page {number}");
            self.ocr.run(&dir, "tesseract", args, &what, self.ocr.page_wall()).await?;
            let tsv = tokio::fs::read(dir.join(format!("{out}.tsv")))
                .await
                .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("reading Tesseract's output of page {number}: {e}")))?;
            let recognised = read_tsv(number, &String::from_utf8_lossy(&tsv));
            if best.as_ref().is_none_or(|(kept, _)| recognised.score() > kept.score()) {
                best = Some((recognised, dir.join(format!("{out}.pdf"))));
            }
        }
        let (recognised, pdf) = best.expect("at least one pass");
        self.read.push((number, pdf));
        self.report.pages.push(OcrPage {
            page: number,
            confidence: recognised.confidence.map(|c| c.round() as u32),
        });
        Ok(recognised)
    }

    /// The searchable PDF of the document: every page read, with its text
    /// invisible over the picture, and for a PDF the pages that had text as
    /// they were. Call once every page is read.
    pub async fn searchable_pdf(&self) -> Result<Vec<u8>, ParseFailure> {
        let dir = self.dir.path();
        // Splitting and joining grow with the document, not with one page.
        let wall = self.ocr.page_wall() * 4 + Duration::from_millis(200) * self.page_count;
        let mut parts: Vec<OsString> = Vec::new();
        if self.image.is_none() && self.read.len() < self.page_count as usize {
            let pattern = dir.join("original-%d.pdf").into_os_string();
            self.ocr
                .run(
                    dir,
                    "pdfseparate",
                    vec![self.source.clone().into(), pattern],
                    "splitting the PDF",
                    wall,
                )
                .await?;
            for number in 1..=self.page_count {
                match self.read.iter().find(|(read, _)| *read == number) {
                    Some((_, path)) => parts.push(path.clone().into()),
                    None => parts.push(dir.join(format!("original-{number}.pdf")).into()),
                }
            }
        } else {
            parts.extend(self.read.iter().map(|(_, path)| path.clone().into_os_string()));
        }
        let united = dir.join("searchable.pdf");
        if parts.len() == 1 {
            tokio::fs::copy(&parts[0], &united)
                .await
                .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("copying the searchable PDF: {e}")))?;
        } else {
            parts.push(united.clone().into());
            self.ocr
                .run(dir, "pdfunite", parts, "putting the searchable PDF together", wall)
                .await?;
        }
        tokio::fs::read(&united)
            .await
            .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("reading the searchable PDF: {e}")))
    }

    /// Keeps the PDF pages with a picture on them, and chooses each one's
    /// resolution. A scanned page (one picture
    /// covering most of it) is rendered at the picture's own resolution, so
    /// its pixels are read as they were scanned, neither blurred by resampling
    /// nor misjudged in size (a phone's picture placed at 72 ppi on a huge
    /// page); any other page at `FOLIO_OCR_DPI`. Either is lowered for a page
    /// that would pass `FOLIO_OCR_MAX_PIXELS`. Page sizes come from pdfinfo,
    /// pictures from pdfimages.
    async fn plan_pdf_resolutions(&mut self) -> Result<(), ParseFailure> {
        let dir = self.dir.path().to_owned();
        let range = || -> Vec<OsString> { vec!["-f".into(), "1".into(), "-l".into(), self.page_count.to_string().into()] };
        let mut args = range();
        args.push(self.source.clone().into());
        let info = self
            .ocr
            .run(&dir, "pdfinfo", args, "reading the page sizes", self.ocr.page_wall())
            .await?;
        let sizes = page_sizes(&String::from_utf8_lossy(&info));
        let mut args = range();
        args.extend(["-list".into(), self.source.clone().into()]);
        let listed = self
            .ocr
            .run(&dir, "pdfimages", args, "listing the pictures", self.ocr.page_wall())
            .await?;
        let pictures = pictures(&String::from_utf8_lossy(&listed));
        let (dpi, max_pixels) = (self.ocr.config.dpi, self.ocr.config.max_pixels as f64);
        // A scanned page is a picture over half the page or more. A page
        // with no text and no such picture (a blank page, a diagram, a page
        // drawn only in lines) is left as it is: OCR on the real manuals'
        // figure pages cost minutes and read nothing worth indexing.
        self.pages.retain(|page| {
            sizes
                .iter()
                .find(|(number, ..)| *number == page.number)
                .is_some_and(|&(_, width, height)| {
                    pictures
                        .iter()
                        .any(|p| p.page == page.number && p.area_inches() * 72.0 * 72.0 >= SCAN_COVERAGE * width * height)
                })
        });
        for page in &mut self.pages {
            let Some(&(_, width, height)) = sizes.iter().find(|(number, ..)| *number == page.number) else {
                page.dpi = dpi;
                continue;
            };
            let on_page: Vec<&Picture> = pictures.iter().filter(|p| p.page == page.number && p.ppi > 0.0).collect();
            let scan = on_page.iter().find(|p| p.width / p.ppi * 72.0 >= 0.8 * width.min(height));
            // A page that is one picture within the pixel limit is read as
            // stored, at its own resolution.
            if let (1, Some(scan)) = (on_page.len(), scan)
                && scan.width * scan.height <= max_pixels
            {
                page.picture = true;
                page.dpi = scan.ppi.round().max(1.0) as u32;
                continue;
            }
            let wanted = scan.map_or(dpi as f64, |p| p.ppi.clamp(72.0, MAX_SCAN_DPI));
            let square_inches = (width / 72.0) * (height / 72.0);
            let fits = (max_pixels / square_inches.max(1e-6)).sqrt().floor();
            page.dpi = (wanted.min(fits).round() as u32).max(1);
        }
        Ok(())
    }
}

/// The least share of a page a picture covers for the page to count as
/// scanned.
const SCAN_COVERAGE: f64 = 0.5;

/// The highest resolution a scanned page is rendered at, whatever its
/// picture's own.
const MAX_SCAN_DPI: f64 = 600.0;

/// A picture on a PDF page, from `pdfimages -list`.
#[derive(Debug, PartialEq)]
struct Picture {
    page: u32,
    /// Width and height in pixels.
    width: f64,
    height: f64,
    /// Pixels per inch across and down, as drawn on the page.
    ppi: f64,
    ppi_down: f64,
}

impl Picture {
    /// The area it covers on its page, in square inches.
    fn area_inches(&self) -> f64 {
        if self.ppi <= 0.0 || self.ppi_down <= 0.0 {
            return 0.0;
        }
        (self.width / self.ppi) * (self.height / self.ppi_down)
    }
}

/// The pictures pdfimages lists (`page num type width height color comp bpc
/// enc interp object ID x-ppi y-ppi size ratio`, after two header lines).
fn pictures(listed: &str) -> Vec<Picture> {
    listed
        .lines()
        .skip(2)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 14 || fields[2] != "image" {
                return None;
            }
            Some(Picture {
                page: fields[0].parse().ok()?,
                width: fields[3].parse().ok()?,
                height: fields[4].parse().ok()?,
                ppi: fields[12].parse().ok()?,
                ppi_down: fields[13].parse().ok()?,
            })
        })
        .collect()
}

/// Each page's number, width and height in points, from pdfinfo's
/// `Page    3 size: 612 x 792 pts (letter)` lines.
fn page_sizes(info: &str) -> Vec<(u32, f64, f64)> {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Page")?.trim_start();
            let (number, rest) = rest.split_once(" size:")?;
            let mut size = rest.split_whitespace();
            let width = size.next()?.parse().ok()?;
            let _x = size.next()?;
            let height = size.next()?.parse().ok()?;
            Some((number.trim().parse().ok()?, width, height))
        })
        .collect()
}

/// A document refused by a limit or as unreadable, with the parser's code.
fn refused(error: ParseError) -> ParseFailure {
    ParseFailure::Permanent {
        code: error.code(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdfinfo_page_sizes_are_read() {
        let info =
            "Pages:           3\nPage    1 size: 612 x 792 pts (letter)\nPage    1 rot:  0\nPage    2 size: 595.276 x 841.89 pts (A4)\n";
        assert_eq!(page_sizes(info), [(1, 612.0, 792.0), (2, 595.276, 841.89)]);
    }

    #[test]
    fn pdfimages_pictures_are_read() {
        let listed = "page   num  type   width height color comp bpc  enc interp  object ID x-ppi y-ppi size ratio
--------------------------------------------------------------------------------------------
   1     0 image    2574  3575  gray    1   8  image  no         7  0   311   311 2820K  31%
   2     1 smask     100   100  gray    1   8  image  no         9  0    72    72  100B  1%
";
        assert_eq!(
            pictures(listed),
            [Picture {
                page: 1,
                width: 2574.0,
                height: 3575.0,
                ppi: 311.0,
                ppi_down: 311.0,
            }]
        );
    }
}
