/* A linear-chain CRF's prediction for one sequence: Viterbi tags and token marginals.
 *
 * Built as parley.ml._chain when a C compiler is there (optional: without it Parley runs
 * the numpy code of parley/nlu/extractors/_crf*.py, which this mirrors). A parse tags a
 * message of about ten tokens; numpy's cost there is its calls (~20 a token), not the
 * arithmetic, so the same arithmetic in plain loops is an order of magnitude cheaper.
 *
 * Viterbi gives the numpy code's tags exactly: scores are the same float64 sums
 * ((best before + move) + emission), and ties go the same way (the predecessor with the
 * higher score before the move, then the lower index; the last label by lowest index).
 * Marginals are the forward-backward pass in float64 with every step rescaled, on the
 * moves as a constant plus a sparse correction (see marginals()); the numpy prediction runs
 * in float32, so confidences agree with it to about 1e-6.
 *
 * Buffers only (no numpy headers): the Python side (parley/ml/chain_kernel.py) hands over
 * C-contiguous arrays of the right types and checks the shapes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* Raised when the Python side's checks and this file disagree (see chain_kernel.py). */
#define CHAIN_KERNEL_VERSION 5

static int check(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t count, const char *name)
{
    if (b->itemsize != itemsize || b->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes",
                     name, count, itemsize, b->len);
        return 0;
    }
    return 1;
}

/* viterbi(emissions f32[T*L], transitions f64[L*L], row_max f64[L], row_min f64[L],
 *         T, L, out int64[T]) -> None */
static PyObject *viterbi(PyObject *self, PyObject *args)
{
    Py_buffer eb, tb, maxb, minb, outb;
    Py_ssize_t T, L;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnw*", &eb, &tb, &maxb, &minb, &T, &L, &outb))
        return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    int32_t *back = NULL;
    Py_ssize_t *order = NULL;
    if (T < 1 || L < 1) {
        PyErr_SetString(PyExc_ValueError, "viterbi: T and L must be at least 1");
        goto done;
    }
    if (!check(&eb, 4, T * L, "emissions") || !check(&tb, 8, L * L, "transitions") ||
        !check(&maxb, 8, L, "row_max") || !check(&minb, 8, L, "row_min") ||
        !check(&outb, 8, T, "out"))
        goto done;
    const float *e = eb.buf;
    const double *t = tb.buf, *row_max = maxb.buf, *row_min = minb.buf;
    int64_t *path = outb.buf;
    work = malloc(sizeof(double) * 2 * L);
    back = malloc(sizeof(int32_t) * T * L);
    order = malloc(sizeof(Py_ssize_t) * L);
    if (!work || !back || !order) {
        PyErr_NoMemory();
        goto done;
    }
    double *previous = work, *current = work + L;
    for (Py_ssize_t j = 0; j < L; j++)
        previous[j] = (double)e[j];
    for (Py_ssize_t i = 1; i < T; i++) {
        Py_ssize_t r = 0;
        for (Py_ssize_t q = 1; q < L; q++)
            if (previous[q] > previous[r])
                r = q;
        /* q cannot reach any label as well as r does when even its best move falls
         * below r's worst: fl(p[q] + t[q,j]) <= fl(p[q] + max_j t[q,j]) < fl(p[r] +
         * min_j t[r,j]) <= fl(p[r] + t[r,j]) (rounding is monotone), so leaving it out
         * changes no maximum and no tie. */
        double bound = previous[r] + row_min[r];
        Py_ssize_t k = 0;
        for (Py_ssize_t q = 0; q < L; q++) {
            /* (r itself always: with infinite or NaN weights from a damaged model the
             * test can fail for every label, and the step needs one predecessor) */
            if (q != r && !(previous[q] + row_max[q] >= bound))
                continue;
            /* insertion by (higher score before the move, then lower index) */
            Py_ssize_t at = k++;
            while (at > 0 && previous[order[at - 1]] < previous[q]) {
                order[at] = order[at - 1];
                at--;
            }
            order[at] = q;
        }
        int32_t *arg = back + i * L;
        const double *row = t + order[0] * L;
        double p = previous[order[0]];
        for (Py_ssize_t j = 0; j < L; j++) {
            current[j] = p + row[j];
            arg[j] = (int32_t)order[0];
        }
        for (Py_ssize_t s = 1; s < k; s++) {
            Py_ssize_t q = order[s];
            row = t + q * L;
            p = previous[q];
            for (Py_ssize_t j = 0; j < L; j++) {
                double candidate = p + row[j];
                if (candidate > current[j]) {  /* a tie stays with the earlier one */
                    current[j] = candidate;
                    arg[j] = (int32_t)q;
                }
            }
        }
        const float *emission = e + i * L;
        for (Py_ssize_t j = 0; j < L; j++)
            current[j] += (double)emission[j];
        double *swap = previous;
        previous = current;
        current = swap;
    }
    Py_ssize_t last = 0;
    for (Py_ssize_t j = 1; j < L; j++)
        if (previous[j] > previous[last])
            last = j;
    path[T - 1] = last;
    for (Py_ssize_t i = T - 1; i > 0; i--)
        path[i - 1] = back[i * L + path[i]];
    result = Py_None;
    Py_INCREF(result);
done:
    free(work);
    free(back);
    free(order);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&maxb);
    PyBuffer_Release(&minb);
    PyBuffer_Release(&outb);
    return result;
}

/* marginals(emissions f32[T*L], base, indptr int64[L+1], indices int64[nnz],
 *           values f64[nnz], exp_start f64[L], exp_end f64[L], T, L, first,
 *           out f64[(T-first)*L]) -> bool
 *
 * exp_start / exp_end: exp of the scores of starting / ending in each label (ones for a
 * chain without them). Each token's marginals are scaled to sum to one.
 *
 * The moves exp(t - max t) as ``base`` plus a sparse correction (CSR by the label moved
 * from): L1 training leaves most transitions exactly 0 (all but 290 of 97 x 97 on
 * snips-small), so most moves equal exp(-max t). A step then costs L + nnz products
 * instead of L x L: a[j] = base * sum(alpha) + sum_q alpha[q] * (x[q,j] - base).
 * The difference is exact arithmetic rearranged; its rounding can leave a label that
 * nothing reaches at -1e-17 instead of +1e-17, which is set to 0.
 * False when a step underflows or a value is not finite (absurd weights): the caller then
 * takes the numpy code's fallbacks. */
static PyObject *marginals(PyObject *self, PyObject *args)
{
    Py_buffer eb, pb, ib, vb, sb, nb, outb;
    double base;
    Py_ssize_t T, L, first;
    if (!PyArg_ParseTuple(args, "y*dy*y*y*y*y*nnnw*", &eb, &base, &pb, &ib, &vb, &sb, &nb, &T,
                          &L, &first, &outb))
        return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    if (T < 1 || L < 1 || first < 0 || first >= T) {
        PyErr_SetString(PyExc_ValueError, "marginals: need T, L >= 1 and 0 <= first < T");
        goto done;
    }
    if (!check(&eb, 4, T * L, "emissions") || !check(&pb, 8, L + 1, "indptr") ||
        !check(&sb, 8, L, "exp_start") || !check(&nb, 8, L, "exp_end") ||
        !check(&outb, 8, (T - first) * L, "out"))
        goto done;
    const int64_t *indptr = pb.buf;
    const double *exp_start = sb.buf, *exp_end = nb.buf;
    Py_ssize_t nnz = (Py_ssize_t)indptr[L];
    if (indptr[0] != 0 || nnz < 0 || !check(&ib, 8, nnz, "indices") ||
        !check(&vb, 8, nnz, "values"))
        goto done;
    const int64_t *indices = ib.buf;
    for (Py_ssize_t q = 0; q < L; q++)
        if (indptr[q + 1] < indptr[q]) {
            PyErr_SetString(PyExc_ValueError, "marginals: indptr must not decrease");
            goto done;
        }
    for (Py_ssize_t k = 0; k < nnz; k++)
        if (indices[k] < 0 || indices[k] >= L) {
            PyErr_SetString(PyExc_ValueError, "marginals: an index is out of range");
            goto done;
        }
    const float *e = eb.buf;
    const double *values = vb.buf;
    double *out = outb.buf;
    /* exp_e (T*L), alpha (T*L), scale (T), beta and u (L each) */
    work = malloc(sizeof(double) * (2 * T * L + T + 2 * L));
    if (!work) {
        PyErr_NoMemory();
        goto done;
    }
    double *exp_e = work, *alpha = work + T * L, *scale = alpha + T * L;
    double *beta = scale + T, *u = beta + L;
    const double tiny = DBL_MIN * 1e6;
    int ok = 1;
    for (Py_ssize_t i = 0; i < T && ok; i++) {
        const float *row = e + i * L;
        double top = (double)row[0];
        for (Py_ssize_t j = 1; j < L; j++)
            if ((double)row[j] > top)
                top = (double)row[j];
        double *ee = exp_e + i * L, *a = alpha + i * L;
        for (Py_ssize_t j = 0; j < L; j++)
            ee[j] = exp((double)row[j] - top);
        if (i == 0) {
            for (Py_ssize_t j = 0; j < L; j++)
                a[j] = ee[j] * exp_start[j];
        } else {
            const double *before = a - L;
            double total = 0.0;
            for (Py_ssize_t q = 0; q < L; q++)
                total += before[q];
            for (Py_ssize_t j = 0; j < L; j++)
                a[j] = base * total;
            for (Py_ssize_t q = 0; q < L; q++) {
                double w = before[q];
                for (int64_t k = indptr[q]; k < indptr[q + 1]; k++)
                    a[indices[k]] += w * values[k];
            }
            for (Py_ssize_t j = 0; j < L; j++)
                a[j] = a[j] > 0.0 ? a[j] * ee[j] : 0.0;
        }
        double c = 0.0;
        for (Py_ssize_t j = 0; j < L; j++)
            c += a[j];
        if (!(c > tiny) || !isfinite(c)) {
            ok = 0;
            break;
        }
        for (Py_ssize_t j = 0; j < L; j++)
            a[j] /= c;
        scale[i] = c;
    }
    if (ok) {
        for (Py_ssize_t j = 0; j < L; j++)
            beta[j] = exp_end[j];
        for (Py_ssize_t i = T - 1; i >= first && ok; i--) {
            const double *a = alpha + i * L;
            double *m = out + (i - first) * L, mass = 0.0;
            for (Py_ssize_t j = 0; j < L; j++) {
                m[j] = a[j] * beta[j];
                mass += m[j];
            }
            if (!(mass > tiny) || !isfinite(mass)) {
                ok = 0;
                break;
            }
            for (Py_ssize_t j = 0; j < L; j++)
                m[j] /= mass;
            if (i == first)
                break;
            /* beta before i: sum_j x[q, j] * exp_e[i, j] * beta[i, j] / scale[i] */
            const double *ee = exp_e + i * L;
            double total = 0.0;
            for (Py_ssize_t j = 0; j < L; j++) {
                u[j] = ee[j] * beta[j] / scale[i];
                total += u[j];
            }
            for (Py_ssize_t q = 0; q < L; q++) {
                double sum = base * total;
                for (int64_t k = indptr[q]; k < indptr[q + 1]; k++)
                    sum += values[k] * u[indices[k]];
                beta[q] = sum > 0.0 ? sum : 0.0;
            }
        }
    }
    result = PyBool_FromLong(ok);
done:
    free(work);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&nb);
    PyBuffer_Release(&outb);
    return result;
}

/* viterbi_f32(emissions f32[T*K], scores_to_from f32[K*K], start f32[K], end f32[K],
 *             allowed_indptr int64[K+1], allowed_from int64[nnz], T, K, out int64[T])
 *
 * parley/ml/crf_numpy.py's CRFDecoder.decode of one sequence, in its float32 arithmetic:
 * the best previous label of each label is numpy's argmax over (move + score) (the first
 * of equal ones; NaN counts as the largest, as numpy's does), then the emission is added.
 * Only the allowed moves into each label (allowed_from[allowed_indptr[j]:...], increasing)
 * are weighed when the best of them is above every blocked move (those score BLOCKED plus
 * at most the best previous score); otherwise, or with NaN about, the whole row is. */
static PyObject *viterbi_f32(PyObject *self, PyObject *args)
{
    Py_buffer eb, sb, stb, enb, pb, ab, outb;
    Py_ssize_t T, K;
    float blocked;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*fnnw*", &eb, &sb, &stb, &enb, &pb, &ab, &blocked,
                          &T, &K, &outb))
        return NULL;
    PyObject *result = NULL;
    float *work = NULL;
    int32_t *back = NULL;
    if (T < 1 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "viterbi_f32: T and K must be at least 1");
        goto done;
    }
    if (!check(&eb, 4, T * K, "emissions") || !check(&sb, 4, K * K, "scores_to_from") ||
        !check(&stb, 4, K, "start") || !check(&enb, 4, K, "end") ||
        !check(&pb, 8, K + 1, "allowed_indptr") || !check(&outb, 8, T, "out"))
        goto done;
    const int64_t *indptr = pb.buf;
    Py_ssize_t nnz = (Py_ssize_t)indptr[K];
    if (indptr[0] != 0 || nnz < 0 || !check(&ab, 8, nnz, "allowed_from"))
        goto done;
    const int64_t *from = ab.buf;
    for (Py_ssize_t j = 0; j < K; j++)
        if (indptr[j + 1] < indptr[j]) {
            PyErr_SetString(PyExc_ValueError, "viterbi_f32: indptr must not decrease");
            goto done;
        }
    for (Py_ssize_t k = 0; k < nnz; k++)
        if (from[k] < 0 || from[k] >= K) {
            PyErr_SetString(PyExc_ValueError, "viterbi_f32: an index is out of range");
            goto done;
        }
    const float *e = eb.buf, *moves = sb.buf, *start = stb.buf, *end = enb.buf;
    int64_t *path = outb.buf;
    work = malloc(sizeof(float) * 2 * K);
    back = malloc(sizeof(int32_t) * T * K);
    if (!work || !back) {
        PyErr_NoMemory();
        goto done;
    }
    float *score = work, *next = work + K;
    for (Py_ssize_t j = 0; j < K; j++)
        score[j] = e[j] + start[j];
    for (Py_ssize_t i = 1; i < T; i++) {
        float top = score[0];
        int nan = isnan(score[0]);
        for (Py_ssize_t f = 1; f < K; f++) {
            if (score[f] > top)
                top = score[f];
            nan |= isnan(score[f]);
        }
        float ceiling = blocked + top;  /* no blocked move reaches above this */
        int32_t *arg = back + i * K;
        for (Py_ssize_t j = 0; j < K; j++) {
            const float *row = moves + j * K;
            Py_ssize_t best = -1;
            float value = 0.0f;
            if (!nan) {
                for (int64_t k = indptr[j]; k < indptr[j + 1]; k++) {
                    float v = row[from[k]] + score[from[k]];
                    if (best < 0 || v > value) {
                        best = from[k];
                        value = v;
                    }
                }
            }
            if (best < 0 || !(value > ceiling)) {  /* every move, as numpy's argmax */
                best = 0;
                value = row[0] + score[0];
                for (Py_ssize_t f = 1; f < K && !isnan(value); f++) {
                    float v = row[f] + score[f];
                    if (v > value || isnan(v)) {
                        best = f;
                        value = v;
                    }
                }
            }
            arg[j] = (int32_t)best;
            next[j] = value + e[i * K + j];
        }
        float *swap = score;
        score = next;
        next = swap;
    }
    Py_ssize_t last = 0;
    float last_value = score[0] + end[0];
    for (Py_ssize_t j = 1; j < K && !isnan(last_value); j++) {
        float v = score[j] + end[j];
        if (v > last_value || isnan(v)) {
            last = j;
            last_value = v;
        }
    }
    path[T - 1] = last;
    for (Py_ssize_t i = T - 1; i > 0; i--)
        path[i - 1] = back[i * K + path[i]];
    result = Py_None;
    Py_INCREF(result);
done:
    free(work);
    free(back);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&stb);
    PyBuffer_Release(&enb);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&ab);
    PyBuffer_Release(&outb);
    return result;
}

/* Append the ints of list `ids` to *buf (grown as needed); 0 with an exception set on a
 * non-list, a non-int or an id outside [0, rows). */
static int append_ids(PyObject *ids, Py_ssize_t rows, Py_ssize_t **buf, Py_ssize_t *count,
                      Py_ssize_t *capacity)
{
    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "window_emissions: a slot's ids must be a list");
        return 0;
    }
    Py_ssize_t m = PyList_GET_SIZE(ids);
    if (*count + m > *capacity) {
        Py_ssize_t grown = 2 * (*count + m) + 64;
        Py_ssize_t *bigger = realloc(*buf, (size_t)grown * sizeof(Py_ssize_t));
        if (!bigger) {
            PyErr_NoMemory();
            return 0;
        }
        *buf = bigger;
        *capacity = grown;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        Py_ssize_t id = PyLong_AsSsize_t(PyList_GET_ITEM(ids, j));
        if (id == -1 && PyErr_Occurred())
            return 0;
        if (id < 0 || id >= rows) {
            PyErr_Format(PyExc_ValueError, "window_emissions: id %zd outside 0..%zd", id, rows - 1);
            return 0;
        }
        (*buf)[(*count)++] = id;
    }
    return 1;
}

/* window_emissions(per_text, half, bos, eos, state f32[rows*L], rows, L, out f32[T*L])
 *
 * One message's emissions from its tokens' attribute ids, as SequencePredictor.emissions
 * sums them (parley/nlu/extractors/_crf_single.py): per_text[i][s] is the list of ids
 * token i gives window slot s (shift s - half); token i's ids are BOS (i < half) and EOS
 * (i >= T - half) where >= 0, then per_text[i + s - half][s] for each slot in range,
 * sorted ascending, and its state rows are summed one after the other in float32 — the
 * additions, in the order, of the numpy code (which also adds +0.0 for each padding row
 * when a token has fewer ids than the longest). */
static PyObject *window_emissions(PyObject *self, PyObject *args)
{
    PyObject *per_text;
    Py_ssize_t half, bos, eos, rows, L;
    Py_buffer sb, outb;
    if (!PyArg_ParseTuple(args, "O!nnny*nnw*", &PyList_Type, &per_text, &half, &bos, &eos,
                          &sb, &rows, &L, &outb))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t T = PyList_GET_SIZE(per_text);
    Py_ssize_t *ids = NULL, *starts = NULL, count = 0, capacity = 0;
    if (!check(&sb, sizeof(float), rows * L, "state") || !check(&outb, sizeof(float), T * L, "out"))
        goto done;
    if ((bos >= rows) || (eos >= rows)) {
        PyErr_SetString(PyExc_ValueError, "window_emissions: BOS or EOS id out of range");
        goto done;
    }
    starts = malloc((size_t)(T + 1) * sizeof(Py_ssize_t));
    if (!starts) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t width = 0;
    for (Py_ssize_t i = 0; i < T; i++) {
        starts[i] = count;
        PyObject *own = PyList_GET_ITEM(per_text, i);
        if (!PyList_Check(own)) {
            PyErr_SetString(PyExc_TypeError, "window_emissions: per_text items must be lists");
            goto done;
        }
        Py_ssize_t slots = PyList_GET_SIZE(own);
        if (count + 2 > capacity) {
            Py_ssize_t *bigger = realloc(ids, (size_t)(2 * capacity + 64) * sizeof(Py_ssize_t));
            if (!bigger) {
                PyErr_NoMemory();
                goto done;
            }
            ids = bigger;
            capacity = 2 * capacity + 64;
        }
        if (i < half && bos >= 0)
            ids[count++] = bos;
        if (i >= T - half && eos >= 0)
            ids[count++] = eos;
        for (Py_ssize_t s = 0; s < slots; s++) {
            Py_ssize_t place = i + s - half;
            if (place < 0 || place >= T)
                continue;
            PyObject *there = PyList_GET_ITEM(per_text, place);
            if (!PyList_Check(there) || PyList_GET_SIZE(there) != slots) {
                PyErr_SetString(PyExc_ValueError,
                                "window_emissions: every token needs the same slots");
                goto done;
            }
            if (!append_ids(PyList_GET_ITEM(there, s), rows, &ids, &count, &capacity))
                goto done;
        }
        Py_ssize_t *row = ids + starts[i], n = count - starts[i];
        for (Py_ssize_t a = 1; a < n; a++) {  /* insertion sort: a few dozen ids */
            Py_ssize_t v = row[a], b = a;
            while (b > 0 && row[b - 1] > v) {
                row[b] = row[b - 1];
                b--;
            }
            row[b] = v;
        }
        if (n > width)
            width = n;
    }
    starts[T] = count;
    const float *state = sb.buf;
    float *out = outb.buf;
    for (Py_ssize_t i = 0; i < T; i++) {
        float *acc = out + i * L;
        Py_ssize_t first = starts[i], n = starts[i + 1] - first;
        if (n == 0) {
            for (Py_ssize_t l = 0; l < L; l++)
                acc[l] = 0.0f;
            continue;
        }
        const float *r = state + ids[first] * L;
        for (Py_ssize_t l = 0; l < L; l++)
            acc[l] = r[l];
        for (Py_ssize_t k = 1; k < n; k++) {
            r = state + ids[first + k] * L;
            for (Py_ssize_t l = 0; l < L; l++)
                acc[l] += r[l];
        }
        if (n < width)
            for (Py_ssize_t l = 0; l < L; l++)
                acc[l] += 0.0f;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(ids);
    free(starts);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&outb);
    return result;
}

static PyMethodDef methods[] = {
    {"viterbi", viterbi, METH_VARARGS, "Viterbi tags of one sequence (see _chain.c)."},
    {"marginals", marginals, METH_VARARGS, "Token marginals of one sequence (see _chain.c)."},
    {"viterbi_f32", viterbi_f32, METH_VARARGS,
     "Viterbi tags of one sequence in float32, with start, end and blocked moves."},
    {"window_emissions", window_emissions, METH_VARARGS,
     "One message's CRF emissions from its tokens' window attribute ids."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chain",
    "A linear-chain CRF's Viterbi tags and marginals for one sequence, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__chain(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "VERSION", CHAIN_KERNEL_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
