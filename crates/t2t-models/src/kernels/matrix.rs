//! Strided matrix views over f32 slices and a bounds-checked product on
//! them. The fused kernels split their work into independent tiles across
//! cores themselves, so products run on the calling thread unless asked to
//! spread over the cores.

/// A read-only `rows × cols` matrix inside a slice: element (i, j) is at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` with rows `row_stride` apart, from `offset`.
    pub fn rows(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        check_bounds(data.len(), offset, rows, cols, row_stride);
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// A dense row-major matrix filling `data`.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, 0, rows, cols, cols)
    }

    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Panics unless a row-major view lies inside a slice of `len` elements.
fn check_bounds(len: usize, offset: usize, rows: usize, cols: usize, row_stride: usize) {
    if rows > 0 && cols > 0 {
        let last = offset + (rows - 1) * row_stride + cols - 1;
        assert!(last < len, "matrix view reaches past its slice");
    }
}

/// A writable row-major matrix inside a slice.
pub(crate) struct MatMut<'a> {
    data: &'a mut [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn rows(
        data: &'a mut [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        check_bounds(data.len(), offset, rows, cols, row_stride);
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
        }
    }

    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, 0, rows, cols, cols)
    }
}

/// Where a product runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Threads {
    /// On the calling thread: the caller spreads its work over the cores.
    Calling,
    /// Spread over all cores.
    All,
}

/// `dst = scale·lhs·rhs`, or `dst += scale·lhs·rhs` with `accumulate`, on
/// the calling thread.
pub(crate) fn matmul(dst: MatMut, lhs: Mat, rhs: Mat, scale: f32, accumulate: bool) {
    matmul_on(Threads::Calling, dst, lhs, rhs, scale, accumulate);
}

/// [`matmul`] on `threads`.
pub(crate) fn matmul_on(
    threads: Threads,
    dst: MatMut,
    lhs: Mat,
    rhs: Mat,
    scale: f32,
    accumulate: bool,
) {
    assert!(
        lhs.cols == rhs.rows && dst.rows == lhs.rows && dst.cols == rhs.cols,
        "matmul shapes: [{}, {}] = [{}, {}]·[{}, {}]",
        dst.rows,
        dst.cols,
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            for i in 0..dst.rows {
                let start = dst.offset + i * dst.row_stride;
                dst.data[start..start + dst.cols].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every view was checked to lie inside its slice, and `dst`
    // borrows its slice mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr().add(dst.offset),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            match threads {
                Threads::Calling => gemm::Parallelism::None,
                Threads::All => gemm::Parallelism::Rayon(0),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_and_transposed_products_match_the_definition() {
        // lhs: rows 1..3 of a 4×5 buffer, columns 1..4; rhs: the transpose of a 2×3 block.
        let a: Vec<f32> = (0..20).map(|v| v as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..12).map(|v| (v as f32).sin()).collect();
        let lhs = Mat::rows(&a, 5 + 1, 2, 3, 5);
        let rhs = Mat::rows(&b, 0, 2, 3, 4).t();
        let mut out = vec![1.0f32; 2 * 2];
        matmul(MatMut::dense(&mut out, 2, 2), lhs, rhs, 2.0, true);
        for i in 0..2 {
            for j in 0..2 {
                let want: f32 =
                    1.0 + 2.0 * (0..3).map(|k| a[6 + i * 5 + k] * b[j * 4 + k]).sum::<f32>();
                assert!((out[i * 2 + j] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "past its slice")]
    fn views_past_the_slice_are_refused() {
        let a = vec![0f32; 10];
        Mat::rows(&a, 4, 2, 4, 4);
    }
}
