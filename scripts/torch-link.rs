// Link settings for every package whose binaries link tch; each such package's build.rs
// includes this file. Without `--no-as-needed` the linker drops libtorch_cuda (and with it
// CUDA) because no symbol is referenced directly; the rpath lets binaries find libtorch
// from .deps/ without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
