/* Inverted dropout in one pass: the keep/drop bytes and their product with the activation.
 *
 * Built as parley.ml._dropout when a C compiler is there (optional: without it
 * parley/ml/layers.py draws the same bytes with numpy and multiplies with torch — the same
 * numbers). In torch a dropout is a mask made in numpy (bytes, a comparison, a product) and
 * a multiplication, forward and again backward: on bfloat16 activations torch's elementwise
 * products cost ~0.45 ns an element, and the mask as much again. Here the bytes come
 * straight from the generator's state into a 0/1 byte a element, and each product is one
 * pass.
 *
 * Bit for bit what torch computes: the bytes are numpy's SFC64 stream (the generator's
 * output words in order, each read as its eight bytes in memory); a float32 product is one
 * IEEE multiplication; a bfloat16 one is the float32 product rounded to nearest even, as
 * torch's bfloat16 kernels round (a NaN becomes the quiet NaN 0x7fc0); ``x + y * mask`` is
 * one fused multiply-add, as torch's addcmul computes it on CPUs with FMA (the Python side
 * checks that on the machine before it uses this, and otherwise calls addcmul).
 *
 * Buffers only (no numpy headers): parley/ml/dropout_kernel.py hands over C-contiguous
 * arrays of the right types and sizes. Long passes let go of the interpreter lock, as
 * torch's operations do: a training's lanes, or a bot's DIET and TED, may run on threads
 * of one process (see LET_GO_FROM).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Raised when the Python side's checks and this file disagree (see dropout_kernel.py). */
#define DROPOUT_KERNEL_VERSION 2

static int check(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t count, const char *name)
{
    if (b->itemsize != itemsize || b->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes",
                     name, count, itemsize, b->len);
        return 0;
    }
    return 1;
}

/* A pass over this many elements or more lets go of the interpreter lock while it runs
 * (the buffers stay held): another thread's Python runs meanwhile. Below, the hand-over
 * would cost more than the pass (a few microseconds when the other thread waits for it). */
#define LET_GO_FROM 16384

static PyThreadState *let_go(Py_ssize_t n)
{
    return n >= LET_GO_FROM ? PyEval_SaveThread() : NULL;
}

static void take_back(PyThreadState *released)
{
    if (released)
        PyEval_RestoreThread(released);
}

/* numpy's SFC64 (Chris Doty-Humphrey's Small Fast Chaotic PRNG): state a, b, c, counter. */
static inline uint64_t sfc64_next(uint64_t *s)
{
    const uint64_t out = s[0] + s[1] + s[3]++;
    s[0] = s[1] ^ (s[1] >> 11);
    s[1] = s[2] + (s[2] << 3);
    s[2] = ((s[2] << 24) | (s[2] >> 40)) + out;
    return out;
}

/* stream(state u64[4] (advanced in place), out u8[n]) -> None
 * The stream's first n bytes: numpy's ``SFC64.random_raw(ceil(n / 8)).view(uint8)[:n]``
 * (each word's bytes in memory order, as numpy's view of the words gives them). */
static PyObject *stream(PyObject *self, PyObject *args)
{
    Py_buffer sb, ob;
    if (!PyArg_ParseTuple(args, "w*w*", &sb, &ob))
        return NULL;
    PyObject *result = NULL;
    if (!check(&sb, 8, 4, "state") || ob.itemsize != 1)
        goto done;
    uint64_t state[4];
    memcpy(state, sb.buf, sizeof state);
    uint8_t *out = ob.buf;
    Py_ssize_t n = ob.len, whole = n / 8;
    PyThreadState *released = let_go(n);
    for (Py_ssize_t w = 0; w < whole; w++) {
        uint64_t word = sfc64_next(state);
        memcpy(out + 8 * w, &word, 8);
    }
    if (n > 8 * whole) {
        uint64_t word = sfc64_next(state);
        memcpy(out + 8 * whole, &word, (size_t)(n - 8 * whole));
    }
    take_back(released);
    memcpy(sb.buf, state, sizeof state);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ob);
    return result;
}

/* Each kernel is built for AVX-512, AVX2 and any x86-64, the CPU choosing at load time:
 * the same arithmetic in each (one IEEE multiplication an element), only wider. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define CLONES
#endif

/* An element's factor: the scale where its byte is at least the threshold, else +0 — as bit
 * masks, without a branch (a branch on random bytes is mispredicted a tenth of the time,
 * and keeps the loop from being vectorised). */
static inline float factor_of(uint8_t byte, unsigned threshold, uint32_t factor_bits)
{
    uint32_t bits = factor_bits & (0u - (uint32_t)(byte >= threshold));
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

#define FACTOR(byte) factor_of((byte), threshold, factor_bits)
#define FACTOR_BITS                                                                          \
    uint32_t factor_bits;                                                                    \
    memcpy(&factor_bits, &factor, sizeof factor_bits)

static inline uint16_t to_bfloat16(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint16_t rounded = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    return value != value ? 0x7fc0 : rounded;
}

static inline float from_bfloat16(uint16_t bits)
{
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, sizeof value);
    return value;
}

CLONES static void scale_f32(const float *restrict x, const uint8_t *restrict bytes,
                             unsigned threshold, float factor, Py_ssize_t n,
                             float *restrict out)
{
    FACTOR_BITS;
    for (Py_ssize_t m = 0; m < n; m++)
        out[m] = x[m] * FACTOR(bytes[m]);
}

CLONES static void scale_bf16(const uint16_t *restrict x, const uint8_t *restrict bytes,
                              unsigned threshold, float factor, Py_ssize_t n,
                              uint16_t *restrict out)
{
    FACTOR_BITS;
    for (Py_ssize_t m = 0; m < n; m++)
        out[m] = to_bfloat16(from_bfloat16(x[m]) * FACTOR(bytes[m]));
}

/* scale(x, bytes u8[n], threshold, scale f32, bfloat16, out) -> None
 * out = x * (byte >= threshold ? scale : 0), x and out contiguous float32 or (bfloat16)
 * 16-bit patterns. */
static PyObject *scale(PyObject *self, PyObject *args)
{
    Py_buffer xb, bb, ob;
    int threshold, bfloat16;
    float factor;
    if (!PyArg_ParseTuple(args, "y*y*ifpw*", &xb, &bb, &threshold, &factor, &bfloat16, &ob))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t size = bfloat16 ? 2 : 4, n = bb.len;
    if (!check(&bb, 1, n, "bytes") || !check(&xb, size, n, "x") || !check(&ob, size, n, "out"))
        goto done;
    if (threshold < 0 || threshold > 256) {
        PyErr_SetString(PyExc_ValueError, "scale: threshold outside 0..256");
        goto done;
    }
    PyThreadState *released = let_go(n);
    if (bfloat16)
        scale_bf16(xb.buf, bb.buf, (unsigned)threshold, factor, n, ob.buf);
    else
        scale_f32(xb.buf, bb.buf, (unsigned)threshold, factor, n, ob.buf);
    take_back(released);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&xb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&ob);
    return result;
}

/* x + y * factor, rounded once: torch's addcmul on a CPU with fused multiply-adds. */
__attribute__((target("avx2,fma"))) static void fused_add(
    const float *restrict x, const float *restrict y, const uint8_t *restrict bytes,
    unsigned threshold, float factor, Py_ssize_t n, float *restrict out)
{
    FACTOR_BITS;
    for (Py_ssize_t m = 0; m < n; m++)
        out[m] = fmaf(y[m], FACTOR(bytes[m]), x[m]);
}

/* add_scaled(x f32[n], y f32[n], bytes u8[n], threshold, scale f32, out f32[n]) -> None
 * out = x + y * (byte >= threshold ? scale : 0) as one fused multiply-add (contiguous). */
static PyObject *add_scaled(PyObject *self, PyObject *args)
{
    Py_buffer xb, yb, bb, ob;
    int threshold;
    float factor;
    if (!PyArg_ParseTuple(args, "y*y*y*ifw*", &xb, &yb, &bb, &threshold, &factor, &ob))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = bb.len;
    if (!check(&bb, 1, n, "bytes") || !check(&xb, 4, n, "x") || !check(&yb, 4, n, "y") ||
        !check(&ob, 4, n, "out"))
        goto done;
    if (threshold < 0 || threshold > 256) {
        PyErr_SetString(PyExc_ValueError, "add_scaled: threshold outside 0..256");
        goto done;
    }
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        PyErr_SetString(PyExc_RuntimeError, "add_scaled: this CPU has no fused multiply-add");
        goto done;
    }
    PyThreadState *released = let_go(n);
    fused_add(xb.buf, yb.buf, bb.buf, (unsigned)threshold, factor, n, ob.buf);
    take_back(released);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&xb);
    PyBuffer_Release(&yb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&ob);
    return result;
}

static PyObject *has_fma(PyObject *self, PyObject *args)
{
    __builtin_cpu_init();
    return PyBool_FromLong(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

static PyMethodDef methods[] = {
    {"stream", stream, METH_VARARGS, "The first bytes of an SFC64 state's stream."},
    {"scale", scale, METH_VARARGS, "x times the kept bytes' scale (float32 or bfloat16)."},
    {"add_scaled", add_scaled, METH_VARARGS, "x + y times the kept bytes' scale, fused."},
    {"has_fma", has_fma, METH_NOARGS, "Whether add_scaled runs on this CPU."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dropout", "Inverted dropout in one pass, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__dropout(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", DROPOUT_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
