/* The weight gradient of sparse rows times a weight matrix, in C.
 *
 * A sparse input layer multiplies rows of a few dozen non-zeros (a token's or a sentence's
 * character n-grams) by a columns × units weight matrix (torch's ``embedding_bag``); its
 * weight gradient is the transposed product: each non-zero (row r, column c, value v) adds
 * v · grad[r] to the gradient's row c. torch's backward sorts the non-zeros by column, and
 * Parley's former one (parley/ml/layers.py, _SparseProduct) spent six torch calls a layer
 * doing so; here one pass over the non-zeros in row order, after the gradient is zeroed.
 * Sums run in that order, element by element (no fused multiply-adds): the same bits on
 * every call and CPU. See parley/ml/sparse_kernel.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Raised when the Python side's checks and this file disagree (see sparse_kernel.py). */
#define SPARSE_KERNEL_VERSION 1

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define CLONES
#endif

CLONES static void accumulate(const int64_t *restrict indices, const int64_t *restrict offsets,
                              const float *restrict values, const float *restrict grad,
                              Py_ssize_t rows, Py_ssize_t nnz, Py_ssize_t units,
                              float *restrict out, Py_ssize_t columns)
{
    memset(out, 0, sizeof(float) * (size_t)(columns * units));
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *g = grad + r * units;
        Py_ssize_t end = r + 1 < rows ? offsets[r + 1] : nnz;
        for (Py_ssize_t e = offsets[r]; e < end; e++) {
            float v = values[e], *to = out + indices[e] * units;
            for (Py_ssize_t d = 0; d < units; d++)
                to[d] += v * g[d];
        }
    }
}

static int check(Py_buffer *b, Py_ssize_t itemsize, const char *name)
{
    if (b->itemsize != itemsize || b->len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of %zd bytes", name, itemsize);
        return 0;
    }
    return 1;
}

/* weight_grad(indices i64[nnz], offsets i64[rows], values f32[nnz], grad f32[rows × units],
 *             units, out f32[columns × units]) -> None */
static PyObject *weight_grad(PyObject *self, PyObject *args)
{
    Py_buffer ib, ob, vb, gb, wb;
    Py_ssize_t units;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nw*", &ib, &ob, &vb, &gb, &units, &wb))
        return NULL;
    PyObject *result = NULL;
    if (!check(&ib, 8, "indices") || !check(&ob, 8, "offsets") || !check(&vb, 4, "values") ||
        !check(&gb, 4, "grad") || !check(&wb, 4, "out"))
        goto done;
    Py_ssize_t nnz = ib.len / 8, rows = ob.len / 8;
    if (units <= 0 || vb.len / 4 != nnz || gb.len / 4 != rows * units || (wb.len / 4) % units) {
        PyErr_SetString(PyExc_ValueError, "weight_grad: shapes do not agree");
        goto done;
    }
    Py_ssize_t columns = wb.len / 4 / units;
    const int64_t *indices = ib.buf, *offsets = ob.buf;
    for (Py_ssize_t r = 0; r < rows; r++) {
        Py_ssize_t end = r + 1 < rows ? offsets[r + 1] : nnz;
        if (offsets[r] < 0 || offsets[r] > end || end > nnz || (r == 0 && offsets[0] != 0)) {
            PyErr_SetString(PyExc_ValueError, "weight_grad: offsets must rise from 0 within the non-zeros");
            goto done;
        }
    }
    for (Py_ssize_t e = 0; e < nnz; e++)
        if (indices[e] < 0 || indices[e] >= columns) {
            PyErr_SetString(PyExc_ValueError, "weight_grad: a column outside the weights");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    accumulate(indices, offsets, vb.buf, gb.buf, rows, nnz, units, wb.buf, columns);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&ib);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&gb);
    PyBuffer_Release(&wb);
    return result;
}

static PyMethodDef methods[] = {
    {"weight_grad", weight_grad, METH_VARARGS, "Sparse rows, transposed, times a gradient."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sparse", "A sparse layer's weight gradient, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__sparse(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", SPARSE_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
