/* Scaled dot-product attention within each message, forward and backward, in one call each.
 *
 * The transformer's rows come as runs — a message's tokens and sentence, a dialogue's
 * states, a padding row alone — and a row attends only to the rows of its own run
 * (``causal``: to those up to itself). torch computes this on blocks of 32 rows, most of
 * whose scores are masked away (a 5-row message fills 25 of a block's 1,024), in some
 * fifteen calls a layer forward and as many backward; this walks each run's rows once.
 *
 * Inputs are the query-key-value projection, rows × 3·units (q | k | v, each head's
 * ``depth`` columns side by side), float32 or bfloat16 (16-bit patterns). Everything is
 * computed in float32 — scores, softmax, the weighted sums — and rounded once where a
 * result is stored (bfloat16: to nearest even, as torch rounds). The softmax weights are
 * kept for the backward (Σ run length² × heads floats). Sums run in a fixed order (dot
 * products in 16 lanes, then a fixed tree), so a result does not depend on the vector
 * width the CPU offers. See parley/ml/attention_kernel.py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Raised when the Python side's checks and this file disagree (see attention_kernel.py). */
#define ATTENTION_KERNEL_VERSION 1

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define CLONES
#endif

#define LANES 16

static inline float from_bfloat16(uint16_t bits)
{
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, sizeof value);
    return value;
}

static inline uint16_t to_bfloat16(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint16_t rounded = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    return value != value ? 0x7fc0 : rounded;
}

/* n values from row-major storage (float32 or bfloat16 patterns) into float32. */
static inline void load_row(const void *base, int bf16, Py_ssize_t at, Py_ssize_t n, float *out)
{
    if (bf16) {
        const uint16_t *p = (const uint16_t *)base + at;
        for (Py_ssize_t d = 0; d < n; d++)
            out[d] = from_bfloat16(p[d]);
    } else {
        memcpy(out, (const float *)base + at, (size_t)n * sizeof(float));
    }
}

static inline void store_row(void *base, int bf16, Py_ssize_t at, Py_ssize_t n, const float *in)
{
    if (bf16) {
        uint16_t *p = (uint16_t *)base + at;
        for (Py_ssize_t d = 0; d < n; d++)
            p[d] = to_bfloat16(in[d]);
    } else {
        memcpy((float *)base + at, in, (size_t)n * sizeof(float));
    }
}

/* a · b in LANES partial sums (element d into lane d mod LANES), then halves added. */
static inline float dot(const float *restrict a, const float *restrict b, Py_ssize_t n)
{
    float acc[LANES] = {0};
    Py_ssize_t d = 0;
    for (; d + LANES <= n; d += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[d + l] * b[d + l];
    for (int l = 0; d < n; d++, l++)
        acc[l] += a[d] * b[d];
    for (int width = LANES / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; l++)
            acc[l] += acc[l + width];
    return acc[0];
}

/* acc += w · x, element by element. */
static inline void add_scaled(float *restrict acc, float w, const float *restrict x, Py_ssize_t n)
{
    for (Py_ssize_t d = 0; d < n; d++)
        acc[d] += w * x[d];
}

typedef struct {
    const void *projected;   /* rows × 3·units */
    int bf16;                /* projected (and out / grad_projected) as bfloat16 patterns */
    Py_ssize_t heads, depth; /* units = heads · depth */
    float scale;
    int causal;
} Layout;

/* One run's q, k and v of one head, as float32 rows (length × depth each). */
static void load_head(const Layout *lay, Py_ssize_t first, Py_ssize_t length, Py_ssize_t h,
                      float *q, float *k, float *v)
{
    Py_ssize_t units = lay->heads * lay->depth, width = 3 * units, depth = lay->depth;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_ssize_t row = (first + i) * width + h * depth;
        load_row(lay->projected, lay->bf16, row, depth, q + i * depth);
        load_row(lay->projected, lay->bf16, row + units, depth, k + i * depth);
        load_row(lay->projected, lay->bf16, row + 2 * units, depth, v + i * depth);
    }
}

/* The softmax weights of one run and head (length × length, row-major; 0 past a causal
 * row's end), from its q and k. */
static void weights_of(const Layout *lay, Py_ssize_t length, const float *q, const float *k,
                       float *w)
{
    Py_ssize_t depth = lay->depth;
    for (Py_ssize_t i = 0; i < length; i++) {
        float *row = w + i * length;
        Py_ssize_t seen = lay->causal ? i + 1 : length;
        float top = -INFINITY;
        for (Py_ssize_t j = 0; j < seen; j++) {
            row[j] = dot(q + i * depth, k + j * depth, depth) * lay->scale;
            top = row[j] > top ? row[j] : top;
        }
        float total = 0.0f;
        for (Py_ssize_t j = 0; j < seen; j++) {
            row[j] = expf(row[j] - top);
            total += row[j];
        }
        for (Py_ssize_t j = 0; j < seen; j++)
            row[j] /= total;
        for (Py_ssize_t j = seen; j < length; j++)
            row[j] = 0.0f;
    }
}

/* Rows and longest run of the run starts (ascending, from 0, ending at the row count). */
static int check_starts(const int64_t *starts, Py_ssize_t runs, Py_ssize_t rows,
                        Py_ssize_t *longest, Py_ssize_t *weights)
{
    *longest = 0;
    *weights = 0;
    if (runs < 0 || starts[0] != 0 || starts[runs] != rows)
        return 0;
    for (Py_ssize_t s = 0; s < runs; s++) {
        Py_ssize_t length = starts[s + 1] - starts[s];
        if (length <= 0)
            return 0;
        *longest = length > *longest ? length : *longest;
        *weights += length * length;
    }
    return 1;
}

static int check(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t count, const char *name)
{
    if (b->itemsize != itemsize || b->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes",
                     name, count, itemsize, b->len);
        return 0;
    }
    return 1;
}

/* Parses and checks what forward and backward share; on success the caller releases the
 * buffers. */
static int parse_layout(Layout *lay, Py_buffer *pb, Py_buffer *sb, Py_ssize_t *rows,
                        Py_ssize_t *runs, Py_ssize_t *longest, Py_ssize_t *weights)
{
    Py_ssize_t size = lay->bf16 ? 2 : 4, width = 3 * lay->heads * lay->depth;
    if (lay->heads <= 0 || lay->depth <= 0 || sb->itemsize != 8 || sb->len < 8 ||
        pb->len % (size * width)) {
        PyErr_SetString(PyExc_ValueError, "attention: bad shapes");
        return 0;
    }
    *rows = pb->len / (size * width);
    *runs = sb->len / 8 - 1;
    if (!check(pb, size, *rows * width, "projected") ||
        !check_starts(sb->buf, *runs, *rows, longest, weights)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "attention: run starts must rise from 0 to the rows");
        return 0;
    }
    lay->projected = pb->buf;
    return 1;
}

/* The runs' attention: out (rows × units) and the weights (see forward). */
CLONES static void attend(const Layout *restrict lay_, const int64_t *starts, Py_ssize_t runs,
                          Py_ssize_t longest, float *scratch, float *w, void *out)
{
    const Layout lay = *lay_;
    Py_ssize_t depth = lay.depth, units = lay.heads * depth;
    float *q = scratch, *k = q + longest * depth, *v = k + longest * depth;
    float *acc = v + longest * depth;
    for (Py_ssize_t s = 0; s < runs; s++) {
        Py_ssize_t first = starts[s], length = starts[s + 1] - first;
        for (Py_ssize_t h = 0; h < lay.heads; h++, w += length * length) {
            load_head(&lay, first, length, h, q, k, v);
            weights_of(&lay, length, q, k, w);
            for (Py_ssize_t i = 0; i < length; i++) {
                memset(acc, 0, sizeof(float) * (size_t)depth);
                Py_ssize_t seen = lay.causal ? i + 1 : length;
                for (Py_ssize_t j = 0; j < seen; j++)
                    add_scaled(acc, w[i * length + j], v + j * depth, depth);
                store_row(out, lay.bf16, (first + i) * units + h * depth, depth, acc);
            }
        }
    }
}

/* The gradient for the projection (see backward). */
CLONES static void attend_back(const Layout *restrict lay_, const int64_t *starts,
                               Py_ssize_t runs, Py_ssize_t longest, float *scratch,
                               const float *w, const void *grad, int grad_bf16, void *out)
{
    const Layout lay = *lay_;
    Py_ssize_t depth = lay.depth, units = lay.heads * depth, span = longest * depth;
    float *q = scratch, *k = q + span, *v = k + span, *dout = v + span;
    float *dq = dout + span, *dk = dq + span, *dv = dk + span, *ds = dv + span;
    for (Py_ssize_t s = 0; s < runs; s++) {
        Py_ssize_t first = starts[s], length = starts[s + 1] - first;
        for (Py_ssize_t h = 0; h < lay.heads; h++, w += length * length) {
            load_head(&lay, first, length, h, q, k, v);
            for (Py_ssize_t i = 0; i < length; i++)
                load_row(grad, grad_bf16, (first + i) * units + h * depth, depth,
                         dout + i * depth);
            size_t used = sizeof(float) * (size_t)(length * depth);
            memset(dq, 0, used);
            memset(dk, 0, used);
            memset(dv, 0, used);
            for (Py_ssize_t i = 0; i < length; i++) {
                Py_ssize_t seen = lay.causal ? i + 1 : length;
                const float *p = w + i * length;
                float *row = ds + i * length, along = 0.0f;
                for (Py_ssize_t j = 0; j < seen; j++) {
                    row[j] = dot(dout + i * depth, v + j * depth, depth);
                    along += p[j] * row[j];
                }
                for (Py_ssize_t j = 0; j < seen; j++) {
                    row[j] = p[j] * (row[j] - along);
                    add_scaled(dq + i * depth, row[j], k + j * depth, depth);
                    add_scaled(dk + j * depth, row[j], q + i * depth, depth);
                    add_scaled(dv + j * depth, p[j], dout + i * depth, depth);
                }
            }
            for (Py_ssize_t d = 0; d < length * depth; d++) {
                dq[d] *= lay.scale;
                dk[d] *= lay.scale;
            }
            for (Py_ssize_t i = 0; i < length; i++) {
                Py_ssize_t row = (first + i) * 3 * units + h * depth;
                store_row(out, lay.bf16, row, depth, dq + i * depth);
                store_row(out, lay.bf16, row + units, depth, dk + i * depth);
                store_row(out, lay.bf16, row + 2 * units, depth, dv + i * depth);
            }
        }
    }
}

/* forward(projected, starts i64[runs + 1], heads, depth, scale, causal, bf16,
 *         out rows × units, weights f32[Σ length² · heads]) -> None */
static PyObject *forward(PyObject *self, PyObject *args)
{
    Py_buffer pb, sb, ob, wb;
    Layout lay;
    if (!PyArg_ParseTuple(args, "y*y*nnfppw*w*", &pb, &sb, &lay.heads, &lay.depth, &lay.scale,
                          &lay.causal, &lay.bf16, &ob, &wb))
        return NULL;
    PyObject *result = NULL;
    float *scratch = NULL;
    Py_ssize_t rows, runs, longest, weights;
    if (!parse_layout(&lay, &pb, &sb, &rows, &runs, &longest, &weights) ||
        !check(&ob, lay.bf16 ? 2 : 4, rows * lay.heads * lay.depth, "out") ||
        !check(&wb, 4, weights * lay.heads, "weights"))
        goto done;
    scratch = malloc(sizeof(float) * (size_t)(4 * longest * lay.depth));
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    attend(&lay, sb.buf, runs, longest, scratch, wb.buf, ob.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(scratch);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&wb);
    return result;
}

/* backward(projected, starts, heads, depth, scale, causal, bf16, weights (forward's),
 *          grad rows × units, grad_bf16, out rows × 3·units (projected's dtype)) -> None
 * The gradient of forward's output with respect to projected: for each run and head,
 * dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)), dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dO. */
static PyObject *backward(PyObject *self, PyObject *args)
{
    Py_buffer pb, sb, wb, gb, ob;
    Layout lay;
    int grad_bf16;
    if (!PyArg_ParseTuple(args, "y*y*nnfppy*y*pw*", &pb, &sb, &lay.heads, &lay.depth,
                          &lay.scale, &lay.causal, &lay.bf16, &wb, &gb, &grad_bf16, &ob))
        return NULL;
    PyObject *result = NULL;
    float *scratch = NULL;
    Py_ssize_t rows, runs, longest, weights;
    if (!parse_layout(&lay, &pb, &sb, &rows, &runs, &longest, &weights) ||
        !check(&wb, 4, weights * lay.heads, "weights") ||
        !check(&gb, grad_bf16 ? 2 : 4, rows * lay.heads * lay.depth, "grad") ||
        !check(&ob, lay.bf16 ? 2 : 4, rows * 3 * lay.heads * lay.depth, "out"))
        goto done;
    /* q, k, v, dO, dQ, dK, dV (longest × depth each), then dS (longest²) */
    scratch = malloc(sizeof(float) * (size_t)(7 * longest * lay.depth + longest * longest));
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    attend_back(&lay, sb.buf, runs, longest, scratch, wb.buf, gb.buf, grad_bf16, ob.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(scratch);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&ob);
    return result;
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS, "Attention within each run of rows, and its weights."},
    {"backward", backward, METH_VARARGS, "The gradient of forward's output for its input."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_attention", "Attention within each message, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__attention(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", ATTENTION_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
