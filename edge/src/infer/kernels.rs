//! Depthwise-convolution kernels for the cases tract 0.23.9 leaves to scalar loops, plugged into
//! tract's own kernel registry (`tract_linalg::routines`).
//!
//! tract picks one kernel per function and machine from an `inventory` of `Routine`s, at run time,
//! by instruction set (an architecture kernel over a generic one, then the most capable set). Its
//! depthwise convolution asks that registry for two inner loops:
//! - `DepthwiseW`, a run of output points along a contiguous axis (NCHW models: the classifier).
//!   tract's x86-64 kernel vectorises stride 1 only, with AVX and no FMA; its aarch64 kernel
//!   vectorises stride 2 only up to four taps. Every stride-2 3×3 layer of MobileNet ran scalar
//!   on x86-64 (with a channel-inner kernel present, tract now moves those layers channel-last).
//! - `DepthwiseC`, channel-inner runs (NHWC models: BlazeFace). tract has none for x86-64, so
//!   every depthwise layer of the detector ran tract's generic loop there.
//!
//! The kernels below fill those cells. They keep tract's contract (the `DepthwiseWF32` and
//! `DepthwiseCF32` docs): same inputs, same outputs up to the rounding of fused multiply-adds.
//! Nothing else in tract changes, and a machine without the instruction sets named in `isa` keeps
//! tract's own choice. [`active`] says which kernels a build and machine run (`edge bench` prints
//! it), and the tests compare every kernel with a plain loop over strides, tap counts, lengths
//! and channel counts, tails included.

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::native;
use tract_onnx::tract_core::tract_linalg::routines::{best_for, Func, Routine};

/// The depthwise kernels tract runs on this machine, by name (`DepthwiseW`, `DepthwiseC`), with
/// `None` where tract has no kernel and runs its generic loop.
pub fn active() -> [(&'static str, Option<&'static str>); 2] {
    let isa = native();
    let name = |func| best_for(func, DatumType::F32, &isa).map(|r: &Routine| r.name());
    [("depthwise_w", name(Func::DepthwiseW)), ("depthwise_c", name(Func::DepthwiseC))]
}

/// Whether tract has a channel-inner depthwise kernel here (ours on x86-64 with AVX2 and FMA,
/// its own on aarch64): then channel-last is the layout it runs depthwise layers fastest in.
pub fn channel_inner() -> bool {
    tract_onnx::tract_core::tract_linalg::routines::depthwise_c_f32().is_some()
}

/// One line for reports: which depthwise kernel tract runs here, for each layout.
pub fn describe() -> String {
    let [(w, w_name), (c, c_name)] = active();
    let name = |n: Option<&str>| n.unwrap_or("tract's generic loop").to_string();
    format!("tract depthwise kernels here: {w} {}, {c} {}", name(w_name), name(c_name))
}

/// A row kernel's sum one point at a time: the W kernels' tails, and the tests' reference.
///
/// # Safety
/// As tract's `DepthwiseWF32`: every `input.offset(offsets[t] + i * in_stride)`
/// for `i` in `from..len` readable, `output.add(i)` writable.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
unsafe fn w_scalar(
    input: *const f32,
    output: *mut f32,
    taps: &[f32],
    offsets: &[isize],
    bias: f32,
    from: usize,
    len: usize,
    in_stride: isize,
) {
    for i in from..len {
        let mut sum = bias;
        for (tap, offset) in taps.iter().zip(offsets) {
            sum += tap * unsafe { *input.offset(offset + i as isize * in_stride) };
        }
        unsafe { *output.add(i) = sum };
    }
}

/// Channels `from..channels` of one channel-inner position, one at a time: the C kernel's tail,
/// and the tests' reference.
///
/// # Safety
/// As tract's `DepthwiseCF32`, for the one position `input`/`output` point at.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
unsafe fn c_scalar(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    from: usize,
    channels: usize,
    k_stride: usize,
) {
    for c in from..channels {
        let mut sum = unsafe { *bias.add(c) };
        for (&kix, &off) in tap_indices.iter().zip(offsets) {
            sum += unsafe { *kernel.add(kix * k_stride + c) * *input.offset(off).add(c) };
        }
        unsafe { *output.add(c) = sum };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use super::{c_scalar, w_scalar};
    use std::arch::x86_64::*;
    use tract_onnx::tract_core::tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_onnx::tract_core::tract_linalg::routines::{Func, Routine, RoutineFactory};

    // Both need AVX2 and FMA, which outranks tract's AVX-only W kernel on machines that have them.
    inventory::submit! {
        Routine {
            func: Func::DepthwiseW,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::DepthwiseWF32 {
                name: "deepfake_edge_fma_depthwise_w_f32",
                run: depthwise_w,
            },
        }
    }

    inventory::submit! {
        Routine {
            func: Func::DepthwiseC,
            arch: Some(Arch::X86_64),
            isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
            boost: 0,
            round_trip: false,
            factory: RoutineFactory::DepthwiseCF32 {
                name: "deepfake_edge_fma_depthwise_c_f32",
                run: depthwise_c,
            },
        }
    }

    /// `DepthwiseWF32` with AVX2 and FMA: strides 1 and 2 vectorised at any tap count.
    ///
    /// # Safety
    /// tract's `DepthwiseWF32` contract; the CPU must have AVX2 and FMA (the registry checks).
    pub unsafe fn depthwise_w(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
        in_stride: isize,
    ) {
        unsafe {
            match in_stride {
                1 => w_vector::<1>(input, output, taps, offsets, bias, len),
                2 => w_vector::<2>(input, output, taps, offsets, bias, len),
                _ => w_scalar(input, output, taps, offsets, bias, 0, len, in_stride),
            }
        }
    }

    /// Taps outer and 32 points inner: four 8-lane accumulators, one broadcast per tap; then 8
    /// points at a time, then the scalar walk. At stride 2 a vector of 8 points loads 16 inputs
    /// and keeps the even ones, which reads one element past its last point's: there the blocks
    /// stop one point early, so that no load passes the run's last input
    /// (`offsets[t] + 2 * (len - 1)`).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn w_vector<const STRIDE: usize>(
        input: *const f32,
        output: *mut f32,
        taps: &[f32],
        offsets: &[isize],
        bias: f32,
        len: usize,
    ) {
        unsafe {
            let spare = STRIDE - 1;
            let biasv = _mm256_set1_ps(bias);
            let mut i = 0usize;
            while i + 32 + spare <= len {
                let mut acc = [biasv; 4];
                for (tap, offset) in taps.iter().zip(offsets) {
                    let k = _mm256_set1_ps(*tap);
                    let p = input.offset(*offset).add(STRIDE * i);
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(points::<STRIDE>(p.add(STRIDE * 8 * j)), k, *a);
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(output.add(i + 8 * j), *a);
                }
                i += 32;
            }
            while i + 8 + spare <= len {
                let mut acc = biasv;
                for (tap, offset) in taps.iter().zip(offsets) {
                    let p = input.offset(*offset).add(STRIDE * i);
                    acc = _mm256_fmadd_ps(points::<STRIDE>(p), _mm256_set1_ps(*tap), acc);
                }
                _mm256_storeu_ps(output.add(i), acc);
                i += 8;
            }
            w_scalar(input, output, taps, offsets, bias, i, len, STRIDE as isize);
        }
    }

    /// Eight points from `p` at stride 1 or 2: a plain load, or the even elements of `p[0..16]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn points<const STRIDE: usize>(p: *const f32) -> __m256 {
        unsafe {
            if STRIDE == 1 {
                return _mm256_loadu_ps(p);
            }
            // Per 128-bit lane: [p0 p2 p8 p10 | p4 p6 p12 p14]; then the middle quads swap.
            let mixed =
                _mm256_shuffle_ps::<0b10_00_10_00>(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(mixed)))
        }
    }

    /// `DepthwiseCF32` with AVX2 and FMA: per position, 32 channels at a time in four
    /// accumulators, then 8, then one by one.
    ///
    /// # Safety
    /// tract's `DepthwiseCF32` contract; the CPU must have AVX2 and FMA (the registry checks).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn depthwise_c(
        input: *const f32,
        output: *mut f32,
        kernel: *const f32,
        tap_indices: &[usize],
        offsets: &[isize],
        bias: *const f32,
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
    ) {
        unsafe {
            for i in 0..len {
                let x = input.offset(i as isize * in_stride);
                let y = output.offset(i as isize * out_stride);
                let mut c = 0usize;
                while c + 32 <= channels {
                    let mut a0 = _mm256_loadu_ps(bias.add(c));
                    let mut a1 = _mm256_loadu_ps(bias.add(c + 8));
                    let mut a2 = _mm256_loadu_ps(bias.add(c + 16));
                    let mut a3 = _mm256_loadu_ps(bias.add(c + 24));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        let k = kernel.add(kix * k_stride + c);
                        let p = x.offset(off).add(c);
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(k), a0);
                        a1 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(p.add(8)),
                            _mm256_loadu_ps(k.add(8)),
                            a1,
                        );
                        a2 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(p.add(16)),
                            _mm256_loadu_ps(k.add(16)),
                            a2,
                        );
                        a3 = _mm256_fmadd_ps(
                            _mm256_loadu_ps(p.add(24)),
                            _mm256_loadu_ps(k.add(24)),
                            a3,
                        );
                    }
                    _mm256_storeu_ps(y.add(c), a0);
                    _mm256_storeu_ps(y.add(c + 8), a1);
                    _mm256_storeu_ps(y.add(c + 16), a2);
                    _mm256_storeu_ps(y.add(c + 24), a3);
                    c += 32;
                }
                while c + 8 <= channels {
                    let mut acc = _mm256_loadu_ps(bias.add(c));
                    for (&kix, &off) in tap_indices.iter().zip(offsets) {
                        let k = _mm256_loadu_ps(kernel.add(kix * k_stride + c));
                        acc = _mm256_fmadd_ps(_mm256_loadu_ps(x.offset(off).add(c)), k, acc);
                    }
                    _mm256_storeu_ps(y.add(c), acc);
                    c += 8;
                }
                c_scalar(x, y, kernel, tap_indices, offsets, bias, c, channels, k_stride);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "x86_64")]
    use tract_onnx::tract_core::tract_linalg::isa::Isa;
    use tract_onnx::tract_core::tract_linalg::routines::RoutineFactory;
    use tract_onnx::tract_core::tract_linalg::routines::{depthwise_c_f32, depthwise_w_f32};

    /// A fixed pseudo-random stream in [-1, 1), so failures reproduce.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn fill(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    /// Values that end exactly where an unmapped page begins: a kernel reading even one element
    /// past the last input its contract allows faults (SIGSEGV) instead of passing unseen.
    struct Guarded {
        base: *mut libc::c_void,
        size: usize,
        start: *const f32,
    }

    impl Guarded {
        fn new(values: &[f32]) -> Guarded {
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
            let bytes = std::mem::size_of_val(values);
            let data = bytes.div_ceil(page) * page;
            let size = data + page;
            unsafe {
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(base, libc::MAP_FAILED, "mmap");
                assert_eq!(libc::mprotect(base.add(data), page, libc::PROT_NONE), 0, "mprotect");
                let start = base.add(data - bytes) as *mut f32;
                std::ptr::copy_nonoverlapping(values.as_ptr(), start, values.len());
                Guarded { base, size, start }
            }
        }

        fn as_ptr(&self) -> *const f32 {
            self.start
        }
    }

    impl Drop for Guarded {
        fn drop(&mut self) {
            unsafe { libc::munmap(self.base, self.size) };
        }
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // FMA rounds once where the plain loop rounds twice: a few ulps of the sum's terms.
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{what}: point {i}: {g} against {w}");
        }
    }

    /// Is the kernel this machine runs for `func` one of ours? Only then is there anything of
    /// ours to test here (another machine keeps tract's kernel or loop).
    fn ours(func: Func) -> bool {
        let name = best_for(func, DatumType::F32, &native()).map(|r| r.name());
        name.is_some_and(|n| n.starts_with("deepfake_edge_"))
    }

    /// tract's kernel for `func` when it is ours; `None`, said on stderr, on a machine where
    /// tract runs something else (there is nothing of ours to test).
    fn ours_or_none<K>(func: Func, kernel: Option<K>) -> Option<K> {
        let kernel = kernel.filter(|_| ours(func));
        if kernel.is_none() {
            eprintln!("no kernel of ours for {func:?} on this machine: {:?}", active());
        }
        kernel
    }

    #[test]
    fn tract_runs_our_kernels_where_the_machine_has_what_they_need() {
        let isa = native();
        #[cfg(target_arch = "x86_64")]
        let expected = isa.has(Isa::X86_64Avx2) && isa.has(Isa::X86_64Fma);
        #[cfg(not(target_arch = "x86_64"))]
        let expected = false;
        assert_eq!(ours(Func::DepthwiseW), expected, "{:?}", active());
        assert_eq!(ours(Func::DepthwiseC), expected, "{:?}", active());
        // What tract's depthwise op asks for is that same kernel.
        if expected {
            let w = best_for(Func::DepthwiseW, DatumType::F32, &isa).map(|r| &r.factory);
            let Some(RoutineFactory::DepthwiseWF32 { run, .. }) = w else {
                panic!("no DepthwiseW kernel")
            };
            assert_eq!(depthwise_w_f32().map(|f| f as usize), Some(*run as usize));
            let c = best_for(Func::DepthwiseC, DatumType::F32, &isa).map(|r| &r.factory);
            let Some(RoutineFactory::DepthwiseCF32 { run, .. }) = c else {
                panic!("no DepthwiseC kernel")
            };
            assert_eq!(depthwise_c_f32().map(|f| f as usize), Some(*run as usize));
        }
    }

    #[test]
    fn the_w_kernel_computes_the_plain_sum_at_every_stride_length_and_tap_count() {
        let Some(kernel) = ours_or_none(Func::DepthwiseW, depthwise_w_f32()) else { return };
        let mut rng = Lcg(7);
        let mut cases = 0;
        for in_stride in [1isize, 2, 3] {
            for taps in [1usize, 2, 4, 5, 9, 25] {
                // A 2-D kernel laid over rows 40 wide, as a zone's offsets are.
                let offsets: Vec<isize> =
                    (0..taps as isize).map(|t| (t / 3) * 40 + (t % 3) - 1 + 41).collect();
                for len in (0..40).chain([63, 64, 65, 100]) {
                    let weights = rng.fill(taps);
                    let bias = rng.next();
                    // Exactly as long as the contract asks to be readable, against an unmapped
                    // page: stride 2 reads pairs, and the odd element after the run's last input
                    // must never be loaded.
                    let last = offsets
                        .iter()
                        .max()
                        .map_or(0, |&o| o + (len.max(1) as isize - 1) * in_stride);
                    let input = Guarded::new(&rng.fill(last as usize + 1));
                    let mut got = vec![f32::NAN; len];
                    let mut want = vec![f32::NAN; len];
                    unsafe {
                        kernel(
                            input.as_ptr(),
                            got.as_mut_ptr(),
                            &weights,
                            &offsets,
                            bias,
                            len,
                            in_stride,
                        );
                        w_scalar(
                            input.as_ptr(),
                            want.as_mut_ptr(),
                            &weights,
                            &offsets,
                            bias,
                            0,
                            len,
                            in_stride,
                        );
                    }
                    close(&got, &want, &format!("stride {in_stride}, {taps} taps, len {len}"));
                    cases += 1;
                }
            }
        }
        assert!(cases > 700);
    }

    #[test]
    fn the_c_kernel_computes_the_plain_sum_for_every_channel_count() {
        let Some(kernel) = ours_or_none(Func::DepthwiseC, depthwise_c_f32()) else { return };
        let mut rng = Lcg(11);
        for channels in (1..=40).chain([48, 63, 64, 65, 96]) {
            // A block of the channels, as tract runs them: `k_stride` is the full count.
            for (k_stride, taps, len, in_stride) in
                [(channels, 9, 7, 1), (channels + 5, 25, 3, 2), (channels, 1, 12, 1)]
            {
                let row = in_stride as usize * k_stride;
                let offsets: Vec<isize> =
                    (0..taps).map(|t| ((t / 5) * 20 * row + (t % 5) * row) as isize).collect();
                let tap_indices: Vec<usize> = (0..taps).rev().collect();
                let weights = rng.fill(taps * k_stride);
                let bias = rng.fill(channels);
                let input = Guarded::new(
                    &rng.fill(offsets[taps - 1] as usize + (len - 1) * row + channels),
                );
                let out_stride = channels + 3;
                let mut got = vec![0.5; len * out_stride];
                let mut want = got.clone();
                unsafe {
                    kernel(
                        input.as_ptr(),
                        got.as_mut_ptr(),
                        weights.as_ptr(),
                        &tap_indices,
                        &offsets,
                        bias.as_ptr(),
                        channels,
                        k_stride,
                        len,
                        row as isize,
                        out_stride as isize,
                    );
                    for i in 0..len {
                        c_scalar(
                            input.as_ptr().add(i * row),
                            want.as_mut_ptr().add(i * out_stride),
                            weights.as_ptr(),
                            &tap_indices,
                            &offsets,
                            bias.as_ptr(),
                            0,
                            channels,
                            k_stride,
                        );
                    }
                }
                // The gaps between positions are left as they were.
                close(&got, &want, &format!("{channels} channels, {taps} taps, len {len}"));
            }
        }
    }
}
