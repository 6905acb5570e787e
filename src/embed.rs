//! `vitrina embed`: vectors for texts or images, written for other tools (JSON lines or
//! NumPy `.npy`), computed by the same model and the same code as `vitrina index`, so
//! they equal what an index stores for the same product text or photo.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;

use crate::encoder::preprocess::load_image;
use crate::encoder::{embed_texts_cached, Model};
use crate::progress::Progress;

/// Photos decoded and embedded per step: bounds memory on folders of large photos.
const IMAGE_CHUNK: usize = 256;
/// File name endings `--images` reads (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// What the vectors are of, one entry per row.
pub enum Inputs {
    /// Texts with their line numbers (1-based) in the file they came from.
    Texts(Vec<(usize, String)>),
    Images(Vec<PathBuf>),
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Images(i) => i.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the vectors are written, chosen by the output file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line: the input (`line` + `text`, or `image`) and its `vector`.
    Jsonl,
    /// A float32 matrix (rows x dim) in input order, for NumPy (`np.load`).
    Npy,
}

impl Format {
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => Ok(Format::Jsonl),
            Some("npy") => Ok(Format::Npy),
            _ => bail!(
                "{}: the output must end in .jsonl (JSON lines) or .npy (NumPy float32 matrix)",
                path.display()
            ),
        }
    }
}

/// Reads one text per line; a blank line or invalid UTF-8 is an error naming the line
/// (skipping it would shift every later row against its line).
pub fn read_texts(path: &Path) -> Result<Inputs> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut texts = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        bail!("{} holds no text (one text a line)", path.display());
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line)
            .with_context(|| format!("{}:{}: not UTF-8 text", path.display(), i + 1))?;
        ensure!(
            !text.trim().is_empty(),
            "{}:{}: empty line (one text a line; every line gets a vector)",
            path.display(),
            i + 1
        );
        texts.push((i + 1, text.to_string()));
    }
    Ok(Inputs::Texts(texts))
}

/// The photos in `dir` (not its subfolders), by file name.
pub fn list_images(dir: &Path) -> Result<Inputs> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        })
        .collect();
    ensure!(
        !paths.is_empty(),
        "{} holds no photos ({})",
        dir.display(),
        IMAGE_EXTENSIONS.join(", ")
    );
    paths.sort();
    Ok(Inputs::Images(paths))
}

/// Embeds the inputs: row-major `len x dim`, each row L2-normalised.
pub fn embed(model: &Model, inputs: &Inputs) -> Result<Vec<f32>> {
    let progress = Progress::new(inputs.len(), "embedding");
    let vectors = match inputs {
        Inputs::Texts(texts) => {
            let texts: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
            let out = embed_texts_cached(model.text.as_ref(), &texts, |n| progress.inc(n))?;
            if out.truncated > 0 {
                eprintln!(
                    "{} texts were longer than the model reads and were cut",
                    out.truncated
                );
            }
            out.vectors
        }
        Inputs::Images(paths) => {
            let encoder = model.image_encoder()?;
            let mut vectors = Vec::with_capacity(paths.len() * model.dim());
            for chunk in paths.chunks(IMAGE_CHUNK) {
                let images = chunk
                    .par_iter()
                    .map(|p| load_image(p))
                    .collect::<Result<Vec<_>>>()?;
                vectors.extend(encoder.embed_images(&images)?.vectors);
                progress.inc(chunk.len());
            }
            vectors
        }
    };
    progress.finish();
    Ok(vectors)
}

/// Writes the vectors to `out` in `format`; the file appears whole or not at all.
pub fn write(
    out: &Path,
    format: Format,
    inputs: &Inputs,
    vectors: &[f32],
    dim: usize,
) -> Result<()> {
    ensure!(
        vectors.len() == inputs.len() * dim,
        "{} vectors of {dim} for {} inputs",
        vectors.len(),
        inputs.len()
    );
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let mut w = BufWriter::new(file.as_file());
    match format {
        Format::Jsonl => {
            for (i, v) in vectors.chunks_exact(dim).enumerate() {
                let line = match inputs {
                    Inputs::Texts(t) => {
                        serde_json::json!({"line": t[i].0, "text": t[i].1, "vector": v})
                    }
                    Inputs::Images(p) => {
                        serde_json::json!({"image": p[i].to_string_lossy(), "vector": v})
                    }
                };
                serde_json::to_writer(&mut w, &line)?;
                w.write_all(b"\n")?;
            }
        }
        Format::Npy => write_npy(&mut w, inputs.len(), dim, vectors)?,
    }
    w.flush()
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    drop(w);
    file.persist(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    Ok(())
}

/// NumPy's format 1.0: magic, a header dict padded to 64 bytes, then raw little-endian
/// float32. Written by hand: it is these few lines, against a crate (npyz, ndarray-npy)
/// that would bring a whole array type along.
fn write_npy(w: &mut impl Write, rows: usize, dim: usize, vectors: &[f32]) -> Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for x in vectors {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_what_numpy_reads() {
        let mut out = Vec::new();
        write_npy(&mut out, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([out[8], out[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&out[10..10 + len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(out.len(), 10 + len + 6 * 4);
        assert_eq!(&out[10 + len..10 + len + 4], &1f32.to_le_bytes());
    }

    #[test]
    fn blank_and_non_utf8_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("texts.txt");
        std::fs::write(&path, "red dress\n\nblue jeans\n").unwrap();
        let err = format!("{:#}", read_texts(&path).err().unwrap());
        assert!(err.contains("texts.txt:2: empty line"), "{err}");
        std::fs::write(&path, b"red dress\r\nbad \xff byte\n").unwrap();
        let err = format!("{:#}", read_texts(&path).err().unwrap());
        assert!(err.contains("texts.txt:2: not UTF-8"), "{err}");
        std::fs::write(&path, "red dress\r\nblue jeans").unwrap();
        let Inputs::Texts(texts) = read_texts(&path).unwrap() else {
            panic!("texts expected");
        };
        assert_eq!(
            texts,
            vec![(1, "red dress".to_string()), (2, "blue jeans".to_string())]
        );
    }

    #[test]
    fn output_format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("v.npy")).unwrap(), Format::Npy);
        assert_eq!(Format::of(Path::new("a/v.jsonl")).unwrap(), Format::Jsonl);
        assert!(Format::of(Path::new("v.csv")).is_err());
    }
}
