//! C-only kernel tests: the library cache, concurrent builds, compiler errors and the `Auto`
//! decision (the speed against hand-written C is the `ratios` bench's). What every back end
//! must do is tested once for all in `kernel::backend_tests`.

use super::super::auto::{auto_choice, decide, jit_works, AutoFacts, C_COMPILE_MAX_EXPRS};
use super::*;
use crate::kernel::precision::Real;
use crate::kernel::test_kit::{close, env_read, qif_buffers, qif_reference_circuit, ENV};
use crate::kernel::{Backend, Kernel};

fn opts(dir: &Path) -> KernelOptions {
    KernelOptions {
        backend: Backend::C,
        cache_dir: Some(dir.to_path_buf()),
        ..KernelOptions::default()
    }
}

/// The two-population QIF circuit every cache test builds.
fn qif() -> Circuit {
    qif_reference_circuit(false)
}

/// What a cache test holds: the environment read lock (no test changes `$CC` meanwhile), its
/// own cache folder, [`qif`] and C options caching there.
fn cache_test() -> (
    std::sync::RwLockReadGuard<'static, ()>,
    tempfile::TempDir,
    Circuit,
    KernelOptions,
) {
    let guard = env_read();
    let dir = tempfile::tempdir().expect("temp dir");
    let options = opts(dir.path());
    (guard, dir, qif(), options)
}

#[test]
fn c_kernel_second_build_loads_from_cache() {
    let (_g, _dir, c, o) = cache_test();
    assert!(!is_cached(&c, &o));
    let first = CKernel::new(&c, &o).expect("compiles");
    assert!(first.compiled_now());
    let mtime = std::fs::metadata(first.library_path())
        .and_then(|m| m.modified())
        .expect("library exists");
    assert!(is_cached(&c, &o));
    let second = CKernel::new(&c, &o).expect("loads");
    assert!(!second.compiled_now(), "second build must not run the compiler");
    assert_eq!(second.library_path(), first.library_path());
    let mtime2 = std::fs::metadata(second.library_path())
        .and_then(|m| m.modified())
        .expect("library exists");
    assert_eq!(mtime, mtime2);
    // A cached library makes Auto pick C even for a tiny run.
    assert_eq!(
        auto_choice(
            &c,
            &KernelOptions {
                backend: Backend::Auto,
                work_hint: 1.0,
                ..o
            }
        ),
        Backend::C
    );
}

#[test]
fn c_kernel_damaged_cache_entry_is_rebuilt() {
    let (_g, _dir, c, o) = cache_test();
    let path = CKernel::new(&c, &o).expect("compiles").library_path().to_path_buf();
    std::fs::write(&path, b"not a shared library").expect("overwrite");
    let k = CKernel::new(&c, &o).expect("rebuilds");
    assert!(k.compiled_now());
}

#[test]
fn c_kernel_concurrent_builds_all_succeed() {
    let (_g, dir, c, o) = cache_test();
    let lanes = 8;
    let [y, p, u] = qif_buffers(&c, &c.layout(), lanes, 0, 3);
    let results: Vec<Vec<f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let k = Kernel::compile(&c, &o).expect("every concurrent build succeeds");
                    let (mut dy, mut a, mut ctx) = (vec![0.0; 4 * lanes], vec![0.0; 2 * lanes], KernelCtx::default());
                    f64::rhs(&k, 0.0, lanes, &y, &p, &u, &mut dy, &mut a, &mut ctx);
                    dy
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    for r in &results[1..] {
        assert_eq!(r, &results[0]);
    }
    // Independent check of one derivative: r' = (Delta/(pi tau) + 2 r v)/tau at r=.01, v=-2.
    let want = 1.0 / std::f64::consts::PI + 2.0 * 0.01 * -2.0;
    assert!(close(results[0][0], want, 1e-12, 0.0));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let libs = names
        .iter()
        .filter(|n| n.ends_with(std::env::consts::DLL_EXTENSION))
        .count();
    assert_eq!(libs, 1, "one library, no temporaries left: {names:?}");
    assert!(!names.iter().any(|n| n.contains(".tmp")), "temporaries left: {names:?}");
}

#[test]
fn c_kernel_without_compiler_is_no_compiler() {
    let _g = ENV.write().unwrap_or_else(|e| e.into_inner());
    let old = std::env::var_os("CC");
    std::env::set_var("CC", "/nonexistent/cc");
    let dir = tempfile::tempdir().expect("temp dir");
    let r = CKernel::new(&qif(), &opts(dir.path()));
    let available = compiler_available();
    let auto = auto_choice(
        &qif(),
        &KernelOptions {
            work_hint: 1e12,
            ..opts(dir.path())
        },
    );
    match old {
        Some(v) => std::env::set_var("CC", v),
        None => std::env::remove_var("CC"),
    }
    match r {
        Err(e @ KernelError::NoCompiler { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("/nonexistent/cc") && msg.contains("install gcc"), "{msg}");
        }
        Err(e) => panic!("expected NoCompiler, got {e}"),
        Ok(_) => panic!("expected NoCompiler, got a kernel"),
    }
    assert!(!available);
    assert_ne!(auto, Backend::C);
}

#[test]
fn c_compile_error_is_compile_failed_with_stderr() {
    let _g = env_read();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("bad.so");
    match build::compile("this is not C;", &build::compiler_command(), &target) {
        Err(KernelError::CompileFailed { stderr, status }) => {
            assert_ne!(status, 0);
            assert!(stderr.contains("error"), "{stderr}");
        }
        other => panic!("expected CompileFailed, got {:?}", other.err()),
    }
    assert!(!target.exists());
}

#[test]
fn c_load_of_non_library_is_load_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("junk.so");
    std::fs::write(&path, b"junk").expect("write");
    assert!(matches!(load(&path, None), Err(KernelError::LoadFailed { .. })));
}

#[test]
fn auto_decide_follows_compile_share_rule() {
    let base = AutoFacts {
        compiler: true,
        cached: false,
        jit_works: true,
        work_hint: 0.0,
        states: 4,
        exprs: 10,
    };
    // 0.3 s compile ≤ 10 % of run ⇔ work·states·1 ns ≥ 3 s ⇔ work ≥ 7.5e8 for 4 states.
    assert_eq!(
        decide(AutoFacts {
            work_hint: 7.5e8,
            ..base
        }),
        Backend::C
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: 7.4e8,
            ..base
        }),
        Backend::Jit
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: 1.0,
            cached: true,
            ..base
        }),
        Backend::C
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: 1e15,
            compiler: false,
            ..base
        }),
        Backend::Jit
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: 1.0,
            jit_works: false,
            ..base
        }),
        Backend::Reference
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: 1e15,
            compiler: false,
            jit_works: false,
            ..base
        }),
        Backend::Reference
    );
    assert_eq!(
        decide(AutoFacts {
            work_hint: f64::NAN,
            ..base
        }),
        Backend::Jit
    );
    // A circuit too large for cc -O3 in reasonable time goes to the JIT however long the run,
    // unless its library is already cached.
    let huge = AutoFacts {
        work_hint: 1e15,
        exprs: C_COMPILE_MAX_EXPRS + 1,
        ..base
    };
    assert_eq!(decide(huge), Backend::Jit);
    assert_eq!(
        decide(AutoFacts {
            exprs: C_COMPILE_MAX_EXPRS,
            ..huge
        }),
        Backend::C
    );
    assert_eq!(decide(AutoFacts { cached: true, ..huge }), Backend::C);
}

#[test]
fn auto_choice_small_uncached_run_avoids_compiling() {
    let _g = env_read();
    let dir = tempfile::tempdir().expect("temp dir");
    let o = KernelOptions {
        backend: Backend::Auto,
        work_hint: 10.0,
        ..opts(dir.path())
    };
    let want = if jit_works(&o) {
        Backend::Jit
    } else {
        Backend::Reference
    };
    assert_eq!(auto_choice(&qif(), &o), want);
    let big = KernelOptions { work_hint: 1e10, ..o };
    assert_eq!(
        auto_choice(&qif(), &big),
        if compiler_available() { Backend::C } else { want }
    );
}

/// The dense loops walk a pointer only over sources evenly spaced upwards (the spacing in
/// slots); anything else, and fewer than two sources, reads them by index (0).
#[test]
fn dense_source_spacing_only_for_evenly_spaced_sources() {
    use super::net::source_spacing;
    assert_eq!(source_spacing(&[3, 5, 7, 9]), 2);
    assert_eq!(source_spacing(&[0, 1]), 1);
    assert_eq!(source_spacing(&[0, 2, 5]), 0, "uneven");
    assert_eq!(source_spacing(&[9, 7, 5]), 0, "downwards");
    assert_eq!(source_spacing(&[4, 4, 4]), 0, "repeated");
    assert_eq!(source_spacing(&[4]), 0, "one source");
    assert_eq!(source_spacing(&[]), 0, "none");
}

/// A noisy network's C source does not grow with N: the same text up to numbers (node
/// counts, offsets) for 5 and 40 nodes, one noise draw per precision's loop body, each node's
/// source read from the data (`NS0`), none baked in per node.
#[test]
fn noisy_network_source_is_the_same_text_whatever_n() {
    let texts: Vec<String> = [5, 40]
        .iter()
        .map(|&n| {
            let c = crate::model::network::testing::noisy(n);
            let plan = crate::model::network::plan(&c).expect("a network");
            super::net::emit(&c, &plan).0.text
        })
        .collect();
    let shape = |t: &str| t.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
    assert!(shape(&texts[0]) == shape(&texts[1]), "the text differs beyond numbers");
    for t in &texts {
        assert_eq!(
            t.matches("rr_randn(").count(),
            3,
            "the hook's definition, then f64 and f32 bodies"
        );
        assert_eq!(t.matches("rr_randn(ctx, NS0, l)").count(), 2);
    }
}
