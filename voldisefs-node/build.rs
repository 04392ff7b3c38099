//! Builds the page's client: `voldisefs-crypto` (feature `browser`) for
//! `wasm32-unknown-unknown`, then its JavaScript bindings with wasm-bindgen, into `OUT_DIR`,
//! where `src/http/assets.rs` embeds them. So the node serves the WebAssembly and scripts the
//! page seals and opens with from its own binary: no CDN, no network at run time, and one
//! implementation of the format (the Rust one).
//!
//! The WebAssembly is built by a nested `cargo` into its own target directory (beside this
//! build's, shared by debug and release builds), always optimised: a debug build of Argon2id
//! would take minutes in a page. It needs the `wasm32-unknown-unknown` target of the toolchain
//! in use; when rustup manages it and the target is missing, it is added (once, with a
//! warning). No C compiler is needed (see voldisefs-crypto/src/primitives.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(e) = build() {
        // A build script reports by exiting non-zero with the reason on stderr.
        eprintln!("error: building the page's WebAssembly client failed: {e}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("voldisefs-node has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    for input in [
        "voldisefs-crypto/src",
        "voldisefs-crypto/Cargo.toml",
        "voldisefs-crypto/FORMAT.md",
        "voldisefs-proto/src",
        "voldisefs-proto/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    ensure_target()?;
    let target_dir = wasm_target_dir(&out_dir);
    let cargo = env("CARGO")?;
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "rustc",
            "--quiet",
            "--locked",
            "--release",
            "--lib",
            "-p",
            "voldisefs-crypto",
            "--features",
            "browser",
            "--crate-type",
            "cdylib",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    // No C compiler for the page: the browser build of voldisefs-crypto is pure Rust
    // (src/primitives.rs there). A dependency that starts to need one fails here, loudly.
    command.env("CC_wasm32_unknown_unknown", "false");
    // This build's own flags (sanitizers, coverage, a host linker) are not the page's.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo rustc -p voldisefs-crypto --features browser --target {TARGET}` failed ({status})"
        ));
    }
    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join("voldisefs_crypto.wasm");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)
        .map_err(|e| format!("wasm-bindgen: {e}"))?
        .typescript(false)
        .generate(&out_dir)
        .map_err(|e| format!("wasm-bindgen on {}: {e}", wasm.display()))?;
    Ok(())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// `<target>/wasm-page` when `out_dir` is `<target>/<profile>/build/<pkg>/out` (shared by every
/// profile), else a directory under `out_dir`.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    let mut up = out_dir.ancestors();
    let build = up.nth(2);
    match (build, up.nth(1)) {
        (Some(build), Some(target)) if build.file_name().is_some_and(|n| n == "build") => {
            target.join("wasm-page")
        }
        _ => out_dir.join("wasm-page"),
    }
}

/// Adds the wasm32 target through rustup when the toolchain lacks it.
fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Ok(());
    }
    println!(
        "cargo:warning=adding the {TARGET} target with rustup (the page's client is built for it)"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if added {
        Ok(())
    } else {
        Err(format!(
            "this toolchain has no {TARGET} target and rustup could not add it: run `rustup target add {TARGET}`"
        ))
    }
}
