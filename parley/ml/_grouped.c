/* The grouped layers' float32 training products, a whole layer in one call (AVX2 + FMA).
 *
 * Built as parley.ml._grouped when a C compiler is there (optional: without it
 * parley/ml/grouped.py multiplies group by group with torch). A grouped layer (see
 * GroupedLinear) connects each group of outputs to one group of inputs; in float32 torch
 * runs each group's product through MKL, whose small products (K = 52 rows of a kernel,
 * ~52 outputs) reach ~40 GFLOP/s on a core that does ~80 on large ones: every call packs
 * its operands again and the edges of 52-wide blocks waste its tiles. Here one call does
 * all of a layer's groups, forward or backward, with a 6 × 16 register tile: the kernel is
 * packed once a group into 16-wide panels, the inputs are read in place through the
 * group's column list (the layer's shuffle folded in: no gather before the products, no
 * scatter after the input gradient), the bias starts the sums.
 *
 * Sums run in a fixed order (each output adds its products in kernel-row order; the kernel
 * gradient adds rows in blocks of CHUNK, in row order): the same inputs give the same bits
 * on every call, thread and run — not MKL's bits, so models trained with this kernel differ
 * in their last bits from those trained without (the model's fingerprint says which).
 *
 * The same module's bfloat16 products (AVX512_BF16) live in _grouped_bf16.c: forward and
 * backward below check the arguments for both and hand a bfloat16 call over (``bf16``).
 *
 * Buffers only (no numpy headers): parley/ml/grouped_kernel.py hands over C-contiguous
 * arrays of the right types and sizes and checks the shapes; this file checks sizes again.
 * The products let go of the interpreter lock: a training's lanes, or a bot's DIET and TED,
 * run on threads of one process.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_grouped.h"

/* Raised when the Python side's calls and this file disagree (see grouped_kernel.py). */
#define GROUPED_KERNEL_VERSION 3
#define BF16_REGISTERS 1  /* forward's and backward's bf16: AVX-512 register tiles */
#define BF16_AMX 2        /* AMX tiles */

#define TILE_ROWS 6   /* a register tile: 6 rows × 16 columns = 12 of the 16 registers */
#define WIDTH 16
#define CHUNK 128      /* kernel gradient: rows packed at a time, kept in cache across a group's tiles */
#define FIELDS 5      /* a group's entry: fan-in K, width N, first output column, kernel offset, column-list offset */


/* b holds rows × per_row items of itemsize bytes. The sizes come from the caller: their
 * product is checked before it is taken (rows = 2^61 of 8 columns wrapped to 0 bytes, and an
 * empty buffer passed for 2^61 rows). */
static int check(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t rows, Py_ssize_t per_row,
                 const char *name)
{
    if (rows < 0 || per_row < 0 || (per_row > 0 && rows > PY_SSIZE_T_MAX / itemsize / per_row)) {
        PyErr_Format(PyExc_ValueError, "%s: %zd rows of %zd items: negative, or past memory",
                     name, rows, per_row);
        return 0;
    }
    if (b->itemsize != itemsize || b->len != itemsize * rows * per_row) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes",
                     name, rows * per_row, itemsize, b->len);
        return 0;
    }
    return 1;
}

/* A buffer read as items of itemsize bytes (its length is its own). */
static int items_of(Py_buffer *b, Py_ssize_t itemsize, const char *name)
{
    if (b->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of %zd bytes, got %zd", name,
                     itemsize, b->itemsize);
        return 0;
    }
    return 1;
}

/* The group table, checked against the layer's sizes. */
static int read_groups(Py_buffer *gb, int64_t in_features, int64_t out_features,
                       int64_t kernel_size, int64_t cols_size, Group **groups, int64_t *count)
{
    if (gb->itemsize != 8 || gb->len % (8 * FIELDS) != 0 || gb->len == 0) {
        PyErr_SetString(PyExc_ValueError, "groups: expected rows of 5 int64");
        return 0;
    }
    int64_t n = gb->len / (8 * FIELDS);
    const int64_t *raw = (const int64_t *)gb->buf;
    Group *g = (Group *)malloc(sizeof(Group) * (size_t)n);
    if (!g) {
        PyErr_NoMemory();
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        g[i].k = raw[i * FIELDS];
        g[i].n = raw[i * FIELDS + 1];
        g[i].o0 = raw[i * FIELDS + 2];
        g[i].koff = raw[i * FIELDS + 3];
        g[i].coff = raw[i * FIELDS + 4];
        /* each offset against the room left past it: offset + size wraps negative for an
         * offset near INT64_MAX (the sizes are checked and not negative); a group reads at
         * most every input once (the float32 input gradient's column list has in + 16 slots) */
        if (g[i].k <= 0 || g[i].k > in_features || g[i].n <= 0 || g[i].o0 < 0
            || g[i].o0 > out_features - g[i].n
            || g[i].koff < 0 || g[i].koff > kernel_size
            || g[i].k > (kernel_size - g[i].koff) / g[i].n
            || g[i].coff < 0 || g[i].coff > cols_size - g[i].k) {
            free(g);
            PyErr_SetString(PyExc_ValueError, "groups: an entry lies outside the layer");
            return 0;
        }
    }
    *groups = g;
    *count = n;
    return 1;
}

static int columns_inside(const int32_t *cols, Py_ssize_t n, int64_t in_features)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (cols[i] < 0 || cols[i] >= in_features) {
            PyErr_SetString(PyExc_ValueError, "cols: a column lies outside the input");
            return 0;
        }
    return 1;
}

static float *aligned_floats(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    return (float *)p;
}

/* A product's right operand in panels of 16 outputs (zeros past the last): panel p, row d,
 * lane j is the operand's (d, 16p + j), read at w[d · along_depth + (16p + j) · along_out]
 * (the group's kernel as it is for the forward, transposed for the input gradient). */
static void pack(float *dst, const float *w, int64_t depth, int64_t outputs,
                 int64_t along_depth, int64_t along_out)
{
    const int64_t panels = (outputs + WIDTH - 1) / WIDTH;
    for (int64_t p = 0; p < panels; p++)
        for (int64_t d = 0; d < depth; d++)
            for (int64_t j = 0; j < WIDTH; j++) {
                const int64_t c = p * WIDTH + j;
                dst[(p * depth + d) * WIDTH + j] =
                    c < outputs ? w[d * along_depth + c * along_out] : 0.0f;
            }
}

/* out rows[i][col(j)] = init[j] + sum_d a rows[i][acols[d]] * panel[d][j], for a tile of six
 * rows (repeated rows are computed and not stored: rows >= live) and ``width`` columns.
 * ``ocols`` NULL: the tile's columns are out + ocol0 + j, contiguous; else ocols[j]. */
__attribute__((target("avx2,fma")))
static void tile(const float *const a[TILE_ROWS], const int32_t *acols, int64_t depth,
                 const float *panel, const float *init, float *const o[TILE_ROWS], int live,
                 int64_t ocol0, const int32_t *ocols, int64_t width)
{
    __m256 c00 = _mm256_load_ps(init), c01 = _mm256_load_ps(init + 8);
    __m256 c10 = c00, c11 = c01, c20 = c00, c21 = c01;
    __m256 c30 = c00, c31 = c01, c40 = c00, c41 = c01, c50 = c00, c51 = c01;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t d = 0; d < depth; d++) {
        const __m256 b0 = _mm256_load_ps(panel + d * WIDTH);
        const __m256 b1 = _mm256_load_ps(panel + d * WIDTH + 8);
        const int32_t c = acols[d];
        __m256 x;
        x = _mm256_broadcast_ss(a0 + c); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + c); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + c); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + c); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + c); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + c); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    const __m256 sums[2 * TILE_ROWS] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (int i = 0; i < live; i++) {
        float *row = o[i];
        if (ocols == NULL && width == WIDTH) {
            _mm256_storeu_ps(row + ocol0, sums[2 * i]);
            _mm256_storeu_ps(row + ocol0 + 8, sums[2 * i + 1]);
            continue;
        }
        float t[WIDTH] __attribute__((aligned(32)));
        _mm256_store_ps(t, sums[2 * i]);
        _mm256_store_ps(t + 8, sums[2 * i + 1]);
        if (ocols == NULL)
            memcpy(row + ocol0, t, (size_t)width * sizeof(float));
        else
            for (int64_t j = 0; j < width; j++)
                row[ocols[j]] = t[j];
    }
}

/* tile() for a last panel of at most 8 columns (a 51-wide group ends in 3): one vector a
 * row, half the multiply-adds. Each lane is one output's sum, added in the same order: the
 * same bits as the 16-wide tile. */
__attribute__((target("avx2,fma")))
static void tile8(const float *const a[TILE_ROWS], const int32_t *acols, int64_t depth,
                  const float *panel, const float *init, float *const o[TILE_ROWS], int live,
                  int64_t ocol0, const int32_t *ocols, int64_t width)
{
    __m256 c0 = _mm256_load_ps(init);
    __m256 c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t d = 0; d < depth; d++) {
        const __m256 b = _mm256_load_ps(panel + d * WIDTH);
        const int32_t c = acols[d];
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + c), b, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + c), b, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + c), b, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + c), b, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + c), b, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + c), b, c5);
    }
    const __m256 sums[TILE_ROWS] = {c0, c1, c2, c3, c4, c5};
    for (int i = 0; i < live; i++) {
        float t[8] __attribute__((aligned(32)));
        _mm256_store_ps(t, sums[i]);
        if (ocols == NULL)
            memcpy(o[i] + ocol0, t, (size_t)width * sizeof(float));
        else
            for (int64_t j = 0; j < width; j++)
                o[i][ocols[j]] = t[j];
    }
}

/* rows × panels of one group: out[m, cols] = init + a[m, acols] · panels, for m < rows. */
static void group_rows(const float *a, int64_t lda, const int32_t *acols, int64_t depth,
                       const float *packed, int64_t panels, const float *init, float *out,
                       int64_t ldo, int64_t ocol0, const int32_t *ocols, int64_t outputs,
                       int64_t rows)
{
    for (int64_t m0 = 0; m0 < rows; m0 += TILE_ROWS) {
        const float *ar[TILE_ROWS];
        float *orow[TILE_ROWS];
        int live = (int)(rows - m0 < TILE_ROWS ? rows - m0 : TILE_ROWS);
        for (int i = 0; i < TILE_ROWS; i++) {
            int64_t m = m0 + (i < live ? i : live - 1);
            ar[i] = a + m * lda;
            orow[i] = out + m * ldo;
        }
        for (int64_t p = 0; p < panels; p++) {
            int64_t width = outputs - p * WIDTH < WIDTH ? outputs - p * WIDTH : WIDTH;
            (width <= 8 ? tile8 : tile)(ar, acols, depth, packed + p * depth * WIDTH,
                                        init + p * WIDTH, orow, live, ocol0 + p * WIDTH,
                                        ocols ? ocols + p * WIDTH : NULL, width);
        }
    }
}

/* The CPU must have the bfloat16 products. Their offsets are all 64-bit (the shuffle runs
 * as permutes, not 32-bit gathers): the width bound is a sanity limit only; the permutation
 * tables grow as in² / 30 bytes, and a width too large for memory gets a MemoryError. */
static int bf16_ready(int bf16, Py_ssize_t rows, Py_ssize_t in_f)
{
    if (bf16 != BF16_REGISTERS && bf16 != BF16_AMX) {
        PyErr_SetString(PyExc_ValueError, "bf16: expected 0 (float32), 1 (AVX-512) or 2 (AMX)");
        return 0;
    }
    if (!grouped_bf16_supported()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX512_BF16: ask supported_bf16() first");
        return 0;
    }
    if (bf16 == BF16_AMX && !grouped_amx_supported()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU (or OS) gives no AMX tiles: ask supported_amx() first");
        return 0;
    }
    if (in_f > (INT32_MAX / 2) / 129 || rows > INT64_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "the layer is too wide for the bfloat16 kernel");
        return 0;
    }
    return 1;
}

/* None after a bfloat16 call that went through, else the MemoryError it ran into. */
static PyObject *none_or_no_memory(int ok)
{
    return ok ? Py_NewRef(Py_None) : PyErr_NoMemory();
}

/* forward(x, cols, kernel, bias, groups, out, packed, rows, in, out_features, has_bias, bf16,
 * x_half, out_half): bf16 1 multiplies in bfloat16 (_grouped_bf16.c; 2: on AMX tiles,
 * _grouped_amx.c), x and out may then be bfloat16 (x_half, out_half), and x packed for the
 * backward goes into ``packed``; 0: all float32 and ``packed`` empty */
static PyObject *forward(PyObject *self, PyObject *args)
{
    Py_buffer xb, cb, kb, bb, gb, ob, pb;
    Py_ssize_t rows, in_f, out_f;
    int has_bias, bf16, x_half, out_half;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*nnnpipp", &xb, &cb, &kb, &bb, &gb, &ob, &pb,
                          &rows, &in_f, &out_f, &has_bias, &bf16, &x_half, &out_half))
        return NULL;
    PyObject *result = NULL;
    Group *groups = NULL;
    int64_t count = 0;
    Py_ssize_t ncols = cb.len / 4, nkernel = kb.len / 4;
    if (!bf16 && (x_half || out_half)) {
        PyErr_SetString(PyExc_ValueError, "bfloat16 x or out need the bfloat16 products");
        goto done;
    }
    if (rows <= 0) {  /* (grouped_kernel.py makes no call for no rows) */
        PyErr_SetString(PyExc_ValueError, "rows: expected at least one");
        goto done;
    }
    if (!check(&xb, x_half ? 2 : 4, rows, in_f, "x")
        || !check(&ob, out_half ? 2 : 4, rows, out_f, "out")
        || !items_of(&cb, 4, "cols") || !items_of(&kb, 4, "kernel")
        || (has_bias && !check(&bb, 4, 1, out_f, "bias"))
        || !columns_inside((const int32_t *)cb.buf, ncols, in_f)
        || !read_groups(&gb, in_f, out_f, nkernel, ncols, &groups, &count)
        || (bf16 && !bf16_ready(bf16, rows, in_f))
        || (bf16 && !check(&pb, 2, rows, grouped_bf16_words(groups, count, bf16 == BF16_AMX),
                           "packed")))
        goto done;
    if (bf16) {
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = grouped_bf16_forward(xb.buf, (const int32_t *)cb.buf, (const float *)kb.buf,
                                  has_bias ? (const float *)bb.buf : NULL, groups, count, ob.buf,
                                  rows, in_f, out_f, x_half, out_half, (uint16_t *)pb.buf,
                                  bf16 == BF16_AMX);
        Py_END_ALLOW_THREADS
        result = none_or_no_memory(ok);
        goto done;
    }
    int64_t largest = 0;
    for (int64_t g = 0; g < count; g++) {
        int64_t size = groups[g].k * ((groups[g].n + WIDTH - 1) / WIDTH) * WIDTH
                       + ((groups[g].n + WIDTH - 1) / WIDTH) * WIDTH;
        if (size > largest)
            largest = size;
    }
    float *packed = aligned_floats((size_t)largest);
    if (!packed) {
        PyErr_NoMemory();
        goto done;
    }
    const float *x = (const float *)xb.buf, *kernel = (const float *)kb.buf;
    const float *bias = has_bias ? (const float *)bb.buf : NULL;
    const int32_t *cols = (const int32_t *)cb.buf;
    float *out = (float *)ob.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t g = 0; g < count; g++) {
        const Group *G = &groups[g];
        int64_t panels = (G->n + WIDTH - 1) / WIDTH;
        float *init = packed + G->k * panels * WIDTH;
        pack(packed, kernel + G->koff, G->k, G->n, G->n, 1);
        for (int64_t c = 0; c < panels * WIDTH; c++)
            init[c] = bias && c < G->n ? bias[G->o0 + c] : 0.0f;
        group_rows(x, in_f, cols + G->coff, G->k, packed, panels, init, out, out_f, G->o0,
                   NULL, G->n, rows);
    }
    Py_END_ALLOW_THREADS
    free(packed);
    result = Py_NewRef(Py_None);
done:
    free(groups);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&pb);
    return result;
}

/* The kernel gradient of one group: gw[d, j] = sum_m x[m, cols[d]] · grad[m, o0 + j]. The
 * rows go in chunks of CHUNK: the chunk's inputs of the group are packed row by row (xp,
 * CHUNK × K: the shuffled columns gathered once, then read contiguously by every tile) and
 * the gradient's columns panel by panel (gp, 16 wide, the last one zero-padded: read in
 * place, rows a whole 4 KB apart would fall into the same cache sets). The sums are stored between chunks and added to in row
 * order. ``xp`` and ``gp`` are the caller's, large enough for the group. */
__attribute__((target("avx2,fma")))
static void group_kernel_grad(const float *x, int64_t ldx, const int32_t *cols,
                              const float *grad, int64_t ldg, const Group *G, float *gw,
                              int64_t rows, float *xp, float *gp)
{
    const int64_t K = G->k, panels = (G->n + WIDTH - 1) / WIDTH;
    const int64_t rest = G->n - (panels - 1) * WIDTH;  /* the last panel's columns */
    for (int64_t start = 0; start < rows; start += CHUNK) {
        const int64_t count = start + CHUNK < rows ? CHUNK : rows - start;
        for (int64_t m = 0; m < count; m++) {
            const float *xr = x + (start + m) * ldx;
            for (int64_t d = 0; d < K; d++)
                xp[m * K + d] = xr[cols[d]];
            const float *gr = grad + (start + m) * ldg + G->o0;
            for (int64_t p = 0; p + 1 < panels; p++) {
                float *to = gp + (p * CHUNK + m) * WIDTH;
                _mm256_store_ps(to, _mm256_loadu_ps(gr + p * WIDTH));
                _mm256_store_ps(to + 8, _mm256_loadu_ps(gr + p * WIDTH + 8));
            }
            float *last = gp + ((panels - 1) * CHUNK + m) * WIDTH;
            for (int64_t j = 0; j < WIDTH; j++)
                last[j] = j < rest ? gr[(panels - 1) * WIDTH + j] : 0.0f;
        }
        for (int64_t d0 = 0; d0 < K; d0 += TILE_ROWS) {
            const int live = (int)(K - d0 < TILE_ROWS ? K - d0 : TILE_ROWS);
            int64_t c[TILE_ROWS];
            for (int i = 0; i < TILE_ROWS; i++)
                c[i] = d0 + (i < live ? i : live - 1);
            for (int64_t p = 0; p < panels; p++) {
                const int64_t width = p + 1 < panels ? WIDTH : rest;
                float t[2 * TILE_ROWS * 8] __attribute__((aligned(32)));
                if (start > 0) {
                    memset(t, 0, sizeof(t));
                    for (int i = 0; i < live; i++)
                        memcpy(t + i * WIDTH, gw + (d0 + i) * G->n + p * WIDTH,
                               (size_t)width * sizeof(float));
                }
                const float *panel = gp + p * CHUNK * WIDTH;
                if (width <= 8) {  /* half a tile, as tile8: the same sums */
                    __m256 h[TILE_ROWS];
                    for (int i = 0; i < TILE_ROWS; i++)
                        h[i] = start > 0 ? _mm256_load_ps(t + i * WIDTH) : _mm256_setzero_ps();
                    __m256 h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5];
                    for (int64_t m = 0; m < count; m++) {
                        const float *xr = xp + m * K;
                        const __m256 b = _mm256_load_ps(panel + m * WIDTH);
                        h0 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[0]), b, h0);
                        h1 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[1]), b, h1);
                        h2 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[2]), b, h2);
                        h3 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[3]), b, h3);
                        h4 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[4]), b, h4);
                        h5 = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + c[5]), b, h5);
                    }
                    _mm256_store_ps(t, h0); _mm256_store_ps(t + 16, h1);
                    _mm256_store_ps(t + 32, h2); _mm256_store_ps(t + 48, h3);
                    _mm256_store_ps(t + 64, h4); _mm256_store_ps(t + 80, h5);
                    for (int i = 0; i < live; i++)
                        memcpy(gw + (d0 + i) * G->n + p * WIDTH, t + i * WIDTH,
                               (size_t)width * sizeof(float));
                    continue;
                }
                __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
                if (start > 0) {
                    c00 = _mm256_load_ps(t); c01 = _mm256_load_ps(t + 8);
                    c10 = _mm256_load_ps(t + 16); c11 = _mm256_load_ps(t + 24);
                    c20 = _mm256_load_ps(t + 32); c21 = _mm256_load_ps(t + 40);
                    c30 = _mm256_load_ps(t + 48); c31 = _mm256_load_ps(t + 56);
                    c40 = _mm256_load_ps(t + 64); c41 = _mm256_load_ps(t + 72);
                    c50 = _mm256_load_ps(t + 80); c51 = _mm256_load_ps(t + 88);
                } else {
                    c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
                    c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
                }
                for (int64_t m = 0; m < count; m++) {
                    const float *xr = xp + m * K, *gr = panel + m * WIDTH;
                    const __m256 b0 = _mm256_load_ps(gr), b1 = _mm256_load_ps(gr + 8);
                    __m256 v;
                    v = _mm256_broadcast_ss(xr + c[0]); c00 = _mm256_fmadd_ps(v, b0, c00); c01 = _mm256_fmadd_ps(v, b1, c01);
                    v = _mm256_broadcast_ss(xr + c[1]); c10 = _mm256_fmadd_ps(v, b0, c10); c11 = _mm256_fmadd_ps(v, b1, c11);
                    v = _mm256_broadcast_ss(xr + c[2]); c20 = _mm256_fmadd_ps(v, b0, c20); c21 = _mm256_fmadd_ps(v, b1, c21);
                    v = _mm256_broadcast_ss(xr + c[3]); c30 = _mm256_fmadd_ps(v, b0, c30); c31 = _mm256_fmadd_ps(v, b1, c31);
                    v = _mm256_broadcast_ss(xr + c[4]); c40 = _mm256_fmadd_ps(v, b0, c40); c41 = _mm256_fmadd_ps(v, b1, c41);
                    v = _mm256_broadcast_ss(xr + c[5]); c50 = _mm256_fmadd_ps(v, b0, c50); c51 = _mm256_fmadd_ps(v, b1, c51);
                }
                if (width == WIDTH) {
                    float *row = gw + d0 * G->n + p * WIDTH;
                    const __m256 sums[2 * TILE_ROWS] = {c00, c01, c10, c11, c20, c21,
                                                        c30, c31, c40, c41, c50, c51};
                    for (int i = 0; i < live; i++) {
                        _mm256_storeu_ps(row + i * G->n, sums[2 * i]);
                        _mm256_storeu_ps(row + i * G->n + 8, sums[2 * i + 1]);
                    }
                    continue;
                }
                _mm256_store_ps(t, c00); _mm256_store_ps(t + 8, c01);
                _mm256_store_ps(t + 16, c10); _mm256_store_ps(t + 24, c11);
                _mm256_store_ps(t + 32, c20); _mm256_store_ps(t + 40, c21);
                _mm256_store_ps(t + 48, c30); _mm256_store_ps(t + 56, c31);
                _mm256_store_ps(t + 64, c40); _mm256_store_ps(t + 72, c41);
                _mm256_store_ps(t + 80, c50); _mm256_store_ps(t + 88, c51);
                for (int i = 0; i < live; i++)
                    memcpy(gw + (d0 + i) * G->n + p * WIDTH, t + i * WIDTH,
                           (size_t)width * sizeof(float));
            }
        }
    }
}

/* backward(x, cols, kernel, grad, groups, grad_x or b"", grad_kernel or b"", rows, in, out,
 * bf16, x_half, grad_half): with bf16, x is what the forward packed and grad_x comes in the
 * forward's x type (x_half) */
static PyObject *backward(PyObject *self, PyObject *args)
{
    Py_buffer xb, cb, kb, gb, tb, xgb, kgb;
    Py_ssize_t rows, in_f, out_f;
    int bf16, x_half, grad_half;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*nnnipp", &xb, &cb, &kb, &gb, &tb, &xgb, &kgb,
                          &rows, &in_f, &out_f, &bf16, &x_half, &grad_half))
        return NULL;
    PyObject *result = NULL;
    Group *groups = NULL;
    int64_t count = 0;
    Py_ssize_t ncols = cb.len / 4, nkernel = kb.len / 4;
    int want_x = xgb.len > 0, want_kernel = kgb.len > 0;
    if (!bf16 && (x_half || grad_half)) {
        PyErr_SetString(PyExc_ValueError, "bfloat16 x or grad need the bfloat16 products");
        goto done;
    }
    if (rows <= 0) {
        PyErr_SetString(PyExc_ValueError, "rows: expected at least one");
        goto done;
    }
    if (!check(&gb, grad_half ? 2 : 4, rows, out_f, "grad")
        || !items_of(&cb, 4, "cols") || !items_of(&kb, 4, "kernel")
        || (want_x && !check(&xgb, x_half ? 2 : 4, rows, in_f, "grad_x"))
        || (want_kernel && !check(&kgb, 4, 1, nkernel, "grad_kernel"))
        || !columns_inside((const int32_t *)cb.buf, ncols, in_f)
        || !read_groups(&tb, in_f, out_f, nkernel, ncols, &groups, &count)
        || (bf16 && !bf16_ready(bf16, rows, in_f))
        || !check(&xb, bf16 ? 2 : 4, rows,
                  bf16 ? grouped_bf16_words(groups, count, bf16 == BF16_AMX) : in_f,
                  bf16 ? "packed x" : "x"))
        goto done;
    if (bf16) {
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = grouped_bf16_backward((const uint16_t *)xb.buf, (const int32_t *)cb.buf,
                                   (const float *)kb.buf,
                                   gb.buf, groups, count, want_x ? xgb.buf : NULL,
                                   want_kernel ? (float *)kgb.buf : NULL, rows, in_f, out_f,
                                   x_half, grad_half, bf16 == BF16_AMX);
        Py_END_ALLOW_THREADS
        result = none_or_no_memory(ok);
        goto done;
    }
    int64_t largest = 0;
    for (int64_t g = 0; g < count; g++) {
        int64_t size = (groups[g].n + 1) * ((groups[g].k + WIDTH - 1) / WIDTH) * WIDTH;
        if (size > largest)
            largest = size;
    }
    float *packed = aligned_floats((size_t)largest);
    /* the grad's columns read (o0 + j) and the input columns written (cols, padded) */
    int32_t *ocols = (int32_t *)malloc((size_t)(in_f + WIDTH) * sizeof(int32_t));
    int32_t *gcols = (int32_t *)malloc((size_t)out_f * sizeof(int32_t));
    /* the kernel gradient's packed chunks (see group_kernel_grad) */
    int64_t widest_k = 0, widest_n = 0;
    for (int64_t g = 0; g < count; g++) {
        widest_k = groups[g].k > widest_k ? groups[g].k : widest_k;
        widest_n = groups[g].n > widest_n ? groups[g].n : widest_n;
    }
    float *xp = aligned_floats((size_t)(CHUNK * widest_k));
    float *gp = aligned_floats((size_t)(CHUNK * ((widest_n + WIDTH - 1) / WIDTH) * WIDTH));
    if (!packed || !ocols || !gcols || !xp || !gp) {
        free(packed);
        free(ocols);
        free(gcols);
        free(xp);
        free(gp);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < out_f; j++)
        gcols[j] = (int32_t)j;
    const float *x = (const float *)xb.buf, *kernel = (const float *)kb.buf;
    const float *grad = (const float *)gb.buf;
    const int32_t *cols = (const int32_t *)cb.buf;
    float *grad_x = (float *)xgb.buf, *grad_kernel = (float *)kgb.buf;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t g = 0; g < count; g++) {
        const Group *G = &groups[g];
        if (want_x) {
            /* grad_x[m, cols[d]] = sum_j grad[m, o0 + j] · kernel[d, j]: the transposed
             * kernel in panels of 16 kernel rows, the grad's columns read in order */
            int64_t panels = (G->k + WIDTH - 1) / WIDTH;
            float *zeros = packed + G->n * panels * WIDTH;
            pack(packed, kernel + G->koff, G->n, G->k, 1, G->n);
            memset(zeros, 0, (size_t)(panels * WIDTH) * sizeof(float));
            for (int64_t d = 0; d < panels * WIDTH; d++)
                ocols[d] = d < G->k ? cols[G->coff + d] : 0;
            group_rows(grad, out_f, gcols + G->o0, G->n, packed, panels, zeros, grad_x, in_f,
                       0, ocols, G->k, rows);
        }
        if (want_kernel)
            group_kernel_grad(x, in_f, cols + G->coff, grad, out_f, G,
                              grad_kernel + G->koff, rows, xp, gp);
    }
    Py_END_ALLOW_THREADS
    free(packed);
    free(ocols);
    free(gcols);
    free(xp);
    free(gp);
    result = Py_NewRef(Py_None);
done:
    free(groups);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&xgb);
    PyBuffer_Release(&kgb);
    return result;
}

static PyObject *supported_bf16(PyObject *self, PyObject *args)
{
    return PyBool_FromLong(grouped_bf16_supported());
}

static PyObject *supported_amx(PyObject *self, PyObject *args)
{
    return PyBool_FromLong(grouped_amx_supported());
}

/* Whether this CPU runs the kernel's instructions (AVX2 and FMA). */
static PyObject *supported(PyObject *self, PyObject *args)
{
    __builtin_cpu_init();
    return PyBool_FromLong(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS, "A grouped layer's products, all groups."},
    {"backward", backward, METH_VARARGS, "A grouped layer's input and kernel gradients."},
    {"supported", supported, METH_NOARGS, "Whether the CPU has AVX2 and FMA."},
    {"supported_bf16", supported_bf16, METH_NOARGS,
     "Whether the CPU has AVX-512 with AVX512_BF16 (the bfloat16 products)."},
    {"supported_amx", supported_amx, METH_NOARGS,
     "Whether the CPU and OS give AMX tiles with bfloat16 (the products on tiles)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_grouped", "Grouped layers' float32 products, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__grouped(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", GROUPED_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
