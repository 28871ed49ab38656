/* One message's sparse feature blocks through a linear classifier's weights, in C.
 *
 * Built as parley.ml._linear when a C compiler is there (optional: without it the numpy
 * code of LogisticRegressionClassifier._logits_of_one runs, the same arithmetic). A parse
 * has one row of a few hundred counts; numpy's cost there is its ~15 calls per block and
 * the temporary rows x classes array, not the arithmetic.
 *
 * Buffers only (no numpy headers): parley/ml/linear_kernel.py hands over C-contiguous
 * arrays of the right types.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define LINEAR_KERNEL_VERSION 1

/* tfidf_dot(values f64[n], columns int32[n], offset, idf f64[d] (or empty), coef f64[d*k],
 *           d, k, out f64[k]) -> None
 * out += sum_i x_i * coef[offset + columns[i], :], where x is the block's values as
 * parley/nlu/classifiers/tfidf.py weighs them when idf is given: a count c of a column with
 * idf w > 0 becomes (1 + ln c) * w (c > 0) or c * w, and those become unit length together
 * (columns with idf 0 stay as they are); without idf, the values themselves. */
static PyObject *tfidf_dot(PyObject *self, PyObject *args)
{
    Py_buffer vb, cb, ib, wb, ob;
    Py_ssize_t offset, d, k;
    if (!PyArg_ParseTuple(args, "y*y*ny*y*nnw*", &vb, &cb, &offset, &ib, &wb, &d, &k, &ob))
        return NULL;
    PyObject *result = NULL;
    double *x = NULL;
    Py_ssize_t n = vb.len / 8;
    if (vb.itemsize != 8 || vb.len % 8 || cb.itemsize != 4 || cb.len != 4 * n ||
        (ib.len != 0 && (ib.itemsize != 8 || ib.len != 8 * d)) || wb.itemsize != 8 ||
        wb.len != 8 * d * k || ob.itemsize != 8 || ob.len != 8 * k || d < 0 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "tfidf_dot: arrays of the wrong type or size");
        goto done;
    }
    const double *values = vb.buf, *idf = ib.len ? ib.buf : NULL, *coef = wb.buf;
    const int32_t *columns = cb.buf;
    double *out = ob.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (columns[i] < 0 || offset + columns[i] >= d || offset < 0) {
            PyErr_SetString(PyExc_ValueError, "tfidf_dot: a column is out of range");
            goto done;
        }
    x = malloc(sizeof(double) * (n ? n : 1));
    if (!x) {
        PyErr_NoMemory();
        goto done;
    }
    if (idf) {
        double squares = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double w = idf[offset + columns[i]], v = values[i];
            if (w > 0) {
                v = (v > 0 ? 1.0 + log(v > 1e-300 ? v : 1e-300) : v) * w;
                squares += v * v;
            }
            x[i] = v;
        }
        double norm = sqrt(squares);
        if (norm > 0) {
            double scale = 1.0 / norm;
            for (Py_ssize_t i = 0; i < n; i++)
                if (idf[offset + columns[i]] > 0)
                    x[i] *= scale;
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++)
            x[i] = values[i];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *row = coef + (offset + columns[i]) * k;
        double v = x[i];
        for (Py_ssize_t j = 0; j < k; j++)
            out[j] += v * row[j];
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(x);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&ob);
    return result;
}

static PyMethodDef methods[] = {
    {"tfidf_dot", tfidf_dot, METH_VARARGS, "A sparse block's tf-idf row times weights."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_linear",
    "One message's sparse feature blocks through a linear classifier's weights, in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__linear(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", LINEAR_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
