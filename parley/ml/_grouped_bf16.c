/* The grouped layers' training products in bfloat16, a whole layer in one call
 * (AVX-512 with AVX512_BF16: AMD Zen 4 and later, Intel Cooper Lake and later).
 *
 * Part of parley.ml._grouped (see _grouped.c, which checks the arguments and calls in here
 * without the interpreter lock). Where the CPU multiplies bfloat16 natively, training's
 * products run in it: torch casts a layer's inputs and kernel, gathers and pads the groups
 * and runs them as one batched oneDNN product, ~40% of a DIET step in all. Here every group
 * of a layer goes through one call: its inputs converted to bfloat16 pairs once, read
 * through the group's column list (the shuffle folded in), each group's kernel packed into
 * panels of 16 outputs × pairs of rows, and a 6 × 32 register tile of float32 sums, each
 * step one ``vdpbf16ps``: 16 outputs, two products each. What goes in and comes out is
 * float32, as in torch's bfloat16 path (inputs and gradients rounded to bfloat16 before
 * they multiply, sums kept in float32).
 *
 * Sums run in a fixed order (an output adds its pairs in kernel-row order; the kernel
 * gradient adds pairs of rows in blocks of CHUNK, in row order): the same inputs give the
 * same bits on every call, thread and run; not oneDNN's bits, so the model's fingerprint
 * names this kernel. Tails (a group's last columns, an odd fan-in, a chunk's odd row) are
 * masked: what lies past them is read as zero and never written.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_grouped.h"

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define ROWS 6      /* a register tile: 6 rows × 2 panels of 16 outputs = 12 of 32 registers */
#define LANES 16    /* float32 sums a register holds; each takes a bfloat16 pair a step */
#define CHUNK 128   /* kernel gradient: rows packed at a time (CHUNK / 2 pairs) */

typedef uint32_t pair;  /* two bfloat16, the first in the lower half */

int grouped_bf16_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
           && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

static pair *aligned_pairs(int64_t count)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)(count > 0 ? count : 1) * sizeof(pair)) != 0)
        return NULL;
    return (pair *)p;
}

/* The first n of 16 lanes (none for n <= 0). */
static inline __mmask16 first(int64_t n)
{
    return n <= 0 ? 0 : n >= LANES ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

/* 32 lanes' mask: the first n. */
static inline __mmask32 first32(int64_t n)
{
    return n <= 0 ? 0 : n >= 32 ? 0xFFFFFFFFu : (((__mmask32)1u << n) - 1);
}

/* 16 elements of a float32 (half 0) or bfloat16 (half 1) array from element ``at``, as
 * floats (bfloat16 widened exactly), zero outside m: the layers around may keep their
 * activations and gradients in bfloat16, as torch's bfloat16 products leave them. */
BF16 static inline __m512 load(const void *base, int64_t at, __mmask16 m, int half)
{
    if (half)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)base + at)), 16));
    return _mm512_maskz_loadu_ps(m, (const float *)base + at);
}

/* 16 pairs from 32 floats in order: (lo[0], lo[1]), …, (hi[14], hi[15]). */
BF16 static inline __m512i in_order(__m512 lo, __m512 hi)
{
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* Lane t: the pair (a[t], b[t]). */
static const uint16_t SIDE_BY_SIDE[32] __attribute__((aligned(64))) = {
    0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31,
};

BF16 static inline __m512i side_by_side(__m512 a, __m512 b)
{
    return _mm512_permutexvar_epi16(_mm512_load_si512(SIDE_BY_SIDE), in_order(a, b));
}

/* A product's left operand, pairs along its depth: ap[r · ldp + q] = (a[r, c + 2q],
 * a[r, c + 2q + 1]) for r < rows, c = first_col, zero past ``depth`` up to ldp pairs
 * (≥ ⌈depth / 2⌉). */
BF16 static void pack_rows(pair *ap, int64_t ldp, const void *a, int half, int64_t lda,
                           int64_t rows, int64_t first_col, int64_t depth)
{
    const int64_t pairs = (depth + 1) / 2;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t row = r * lda + first_col;
        pair *to = ap + r * ldp;
        memset(to + pairs, 0, (size_t)(ldp - pairs) * sizeof(pair));
        for (int64_t d = 0; d < depth; d += 2 * LANES)
            _mm512_mask_storeu_epi32(to + d / 2, first((depth - d + 1) / 2),
                                     in_order(load(a, row + d, first(depth - d), half),
                                              load(a, row + d + LANES, first(depth - d - LANES),
                                                   half)));
    }
}

/* Each of ``panels`` panels (stride pairs apart) zero from its pair ``pairs`` on: the
 * pairs an AMX tile reads past a panel's real ones (none with the register tile). */
static void zero_pads(pair *bp, int64_t stride, int64_t panels, int64_t pairs)
{
    if (stride > pairs * LANES)
        for (int64_t p = 0; p < panels; p++)
            memset(bp + p * stride + pairs * LANES, 0,
                   (size_t)(stride - pairs * LANES) * sizeof(pair));
}

/* A product's right operand from a row-major matrix (depth rows × width columns): panels
 * of 16 columns, pairs of rows; panel p starts at bp + p · stride, its pair q (rows 2q,
 * 2q + 1; zero past ``depth``) at + 16q, lane t for column 16p + t (zero past ``width``). */
BF16 static void pack_panels(pair *bp, int64_t stride, const void *w, int half, int64_t ldw,
                             int64_t depth, int64_t width)
{
    const int64_t panels = (width + LANES - 1) / LANES;
    for (int64_t q = 0; q < (depth + 1) / 2; q++) {
        const int64_t even = 2 * q * ldw, odd = even + ldw;
        const int has_odd = 2 * q + 1 < depth;
        for (int64_t p = 0; p < panels; p++) {
            const __mmask16 m = first(width - p * LANES);
            const __m512 a = load(w, even + p * LANES, m, half);
            const __m512 b = has_odd ? load(w, odd + p * LANES, m, half) : _mm512_setzero_ps();
            _mm512_store_si512(bp + p * stride + q * LANES, side_by_side(a, b));
        }
    }
}

/* The same from the transpose of a k × n matrix (for the input gradient: depth n, width k):
 * panel p, pair e, lane t hold (w[16p + t, 2e], w[16p + t, 2e + 1]) — in a row of w its
 * pairs lie side by side already: each row is converted in order into ``row`` (⌈n / 2⌉
 * pairs), then its pairs are dealt to their lane (a gather a pair cost ~30 cycles). */
BF16 static void pack_panels_transposed(pair *bp, int64_t stride, const float *w, int64_t k,
                                       int64_t n, pair *row)
{
    const int64_t panels = (k + LANES - 1) / LANES, pairs = (n + 1) / 2;
    zero_pads(bp, stride, panels, pairs);
    for (int64_t p = 0; p < panels; p++)
        for (int64_t t = 0; t < LANES; t++) {
            const int64_t d = p * LANES + t;
            pair *to = bp + p * stride + t;
            if (d >= k) {
                for (int64_t e = 0; e < pairs; e++)
                    to[e * LANES] = 0;
                continue;
            }
            const float *from = w + d * n;
            for (int64_t c = 0; c < n; c += 2 * LANES)
                _mm512_mask_storeu_epi32(row + c / 2, first((n - c + 1) / 2),
                                         in_order(_mm512_maskz_loadu_ps(first(n - c), from + c),
                                                  _mm512_maskz_loadu_ps(first(n - c - LANES),
                                                                        from + c + LANES)));
            for (int64_t e = 0; e < pairs; e++)
                to[e * LANES] = row[e];
        }
}

/* One register tile: for i < live, o[i][j] = init[i][j] (or 0) + Σ_q a[i][q · as] · b(q, j) over
 * one panel (two == 0: j < 16) or two (j < 32), masked by m0 and m1. Rows past ``live``
 * repeat the last row's pointers: computed, not stored. */
BF16 static inline __attribute__((always_inline)) void
tile(const int two, const pair *const a[ROWS], int64_t as, int64_t pairs, const pair *b0,
     const pair *b1,
     const float *const init[ROWS], void *const o[ROWS], int half, int live, __mmask16 m0,
     __mmask16 m1)
{
    __m512 c0[ROWS], c1[ROWS];
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++) {
        c0[i] = init[i] ? _mm512_maskz_loadu_ps(m0, init[i]) : _mm512_setzero_ps();
        c1[i] = two && init[i] ? _mm512_maskz_loadu_ps(m1, init[i] + LANES) : _mm512_setzero_ps();
    }
    for (int64_t q = 0; q < pairs; q++) {
        const __m512bh v0 = (__m512bh)_mm512_load_si512(b0 + q * LANES);
        const __m512bh v1 = two ? (__m512bh)_mm512_load_si512(b1 + q * LANES) : v0;
#pragma GCC unroll 6
        for (int i = 0; i < ROWS; i++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[i][q * as]);
            c0[i] = _mm512_dpbf16_ps(c0[i], x, v0);
            if (two)
                c1[i] = _mm512_dpbf16_ps(c1[i], x, v1);
        }
    }
    for (int i = 0; i < live; i++) {
        if (half) {
            _mm256_mask_storeu_epi16(o[i], m0, (__m256i)_mm512_cvtneps_pbh(c0[i]));
            if (two)
                _mm256_mask_storeu_epi16((uint16_t *)o[i] + LANES, m1,
                                         (__m256i)_mm512_cvtneps_pbh(c1[i]));
        } else {
            _mm512_mask_storeu_ps(o[i], m0, c0[i]);
            if (two)
                _mm512_mask_storeu_ps((float *)o[i] + LANES, m1, c1[i]);
        }
    }
}

/* out[m, ocol0 + j] = init + Σ_q ap[m · lda + q · as] · b(q, j) for m < rows,
 * j < width, b the panels at bp (stride apart). init: NULL (zeros), or a row of sums per m at
 * init + m · ld_init (ld_init 0: one row for all, the bias). */
BF16 static void products(const pair *ap, int64_t lda, int64_t as, int64_t pairs, int64_t rows,
                          const pair *bp, int64_t stride, int64_t width, const float *init,
                          int64_t ld_init, void *out, int half, int64_t ldo, int64_t ocol0)
{
    const int64_t panels = (width + LANES - 1) / LANES;
    for (int64_t m0 = 0; m0 < rows; m0 += ROWS) {
        const int live = (int)(rows - m0 < ROWS ? rows - m0 : ROWS);
        const pair *a[ROWS];
        int64_t m[ROWS];
        for (int i = 0; i < ROWS; i++) {
            m[i] = m0 + (i < live ? i : live - 1);
            a[i] = ap + m[i] * lda;
        }
        for (int64_t p = 0; p < panels; p += 2) {
            const float *from[ROWS];
            void *to[ROWS];
            for (int i = 0; i < ROWS; i++) {
                from[i] = init ? init + m[i] * ld_init + p * LANES : NULL;
                to[i] = (char *)out + (m[i] * ldo + ocol0 + p * LANES) * (half ? 2 : 4);
            }
            const __mmask16 k0 = first(width - p * LANES), k1 = first(width - (p + 1) * LANES);
            if (p + 1 < panels)
                tile(1, a, as, pairs, bp + p * stride, bp + (p + 1) * stride, from, to, half, live, k0, k1);
            else
                tile(0, a, as, pairs, bp + p * stride, NULL, from, to, half, live, k0, 0);
        }
    }
}

/* Where each group's words start in a packed row (start[g], when not NULL), and the words a
 * row has: each group's fan-in rounded up to even — to a whole number of AMX tile rows (32
 * words) with ``amx``, the gaps zero. */
static int64_t group_starts(const Group *groups, int64_t count, int amx, int64_t *start)
{
    const int64_t align = amx ? 2 * AMX_PAIRS : 2;
    int64_t words = 0;
    for (int64_t g = 0; g < count; g++) {
        if (start)
            start[g] = words;
        words += (groups[g].k + align - 1) / align * align;
    }
    return words;
}

int64_t grouped_bf16_words(const Group *groups, int64_t count, int amx)
{
    return group_starts(groups, count, amx, NULL);
}

static void widest(const Group *groups, int64_t count, int64_t *k, int64_t *n)
{
    *k = *n = 1;
    for (int64_t g = 0; g < count; g++) {
        *k = groups[g].k > *k ? groups[g].k : *k;
        *n = groups[g].n > *n ? groups[g].n : *n;
    }
}

static int64_t panels_of(int64_t width)
{
    return (width + LANES - 1) / LANES;
}

/* A fixed permutation of a row's elements (some targets zero) in registers: target register
 * t gathers its lanes from source register pairs (2s, 2s + 1), one masked ``vpermt2w`` (32
 * bfloat16 words a register) or ``vpermt2ps`` (16 floats) a step, only the steps with lanes
 * to fill. A layer's shuffle costs a few instructions a row this way; gathering columns one
 * by one cost as much as the products (a gather ~30 cycles on AMD Zen 4). */
typedef struct {
    int64_t targets, lanes, regs;  /* target elements, lanes a register, target registers */
    int64_t *first;                /* [regs + 1]: each target register's steps */
    int64_t *pair;                 /* [steps]: a step's source register pair */
    uint32_t *mask;                /* [steps]: the lanes it fills */
    __m512i *index;                /* [steps]: each lane's element within the pair */
} Perm;

static void perm_free(Perm *p)
{
    free(p->first);
    free(p->pair);
    free(p->mask);
    free(p->index);
}

/* from[t]: the source element of target t (< sources), or -1 for zero. */
static int perm_make(Perm *p, const int64_t *from, int64_t targets, int64_t sources, int lanes)
{
    memset(p, 0, sizeof(*p));
    p->targets = targets;
    p->lanes = lanes;
    p->regs = (targets + lanes - 1) / lanes;
    const int64_t pairs = ((sources + lanes - 1) / lanes + 1) / 2;
    const int64_t cells = p->regs * pairs > 0 ? p->regs * pairs : 1;
    uint32_t *masks = (uint32_t *)calloc((size_t)cells, sizeof(uint32_t));
    void *raw = NULL;
    if (!masks || posix_memalign(&raw, 64, (size_t)cells * sizeof(__m512i)) != 0) {
        free(masks);
        return 0;
    }
    __m512i *index = (__m512i *)raw;
    memset(index, 0, (size_t)cells * sizeof(__m512i));
    for (int64_t t = 0; t < targets; t++) {
        if (from[t] < 0)
            continue;
        const int64_t cell = (t / lanes) * pairs + from[t] / (2 * lanes);
        const int64_t lane = t % lanes, at = from[t] % (2 * lanes);
        if (lanes == 32)
            ((uint16_t *)&index[cell])[lane] = (uint16_t)at;
        else
            ((uint32_t *)&index[cell])[lane] = (uint32_t)at;
        masks[cell] |= 1u << lane;
    }
    int64_t steps = 0;
    for (int64_t c = 0; c < p->regs * pairs; c++)
        steps += masks[c] != 0;
    p->first = (int64_t *)malloc((size_t)(p->regs + 1) * sizeof(int64_t));
    p->pair = (int64_t *)malloc((size_t)(steps ? steps : 1) * sizeof(int64_t));
    p->mask = (uint32_t *)malloc((size_t)(steps ? steps : 1) * sizeof(uint32_t));
    raw = NULL;
    if (posix_memalign(&raw, 64, (size_t)(steps ? steps : 1) * sizeof(__m512i)) == 0)
        p->index = (__m512i *)raw;
    int ok = p->first && p->pair && p->mask && p->index;
    for (int64_t t = 0, n = 0; ok && t < p->regs; t++) {
        p->first[t] = n;
        for (int64_t s = 0; s < pairs; s++) {
            const int64_t c = t * pairs + s;
            if (!masks[c])
                continue;
            p->pair[n] = s;
            p->mask[n] = masks[c];
            p->index[n] = index[c];
            n++;
        }
        p->first[t + 1] = n;
    }
    free(masks);
    free(index);
    if (!ok)
        perm_free(p);
    return ok;
}

/* The words of a row of bfloat16 (src: its registers, one zero register past them) permuted
 * into to[0 .. targets). Two sums in turn: one chain of dependent steps waits for each. */
BF16 static void perm_words(const Perm *p, const __m512i *src, uint16_t *to)
{
    for (int64_t t = 0; t < p->regs; t++) {
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        int64_t n = p->first[t];
        const int64_t end = p->first[t + 1];
        for (; n + 1 < end; n += 2) {
            a = _mm512_or_si512(a, _mm512_maskz_permutex2var_epi16(
                p->mask[n], src[2 * p->pair[n]], p->index[n], src[2 * p->pair[n] + 1]));
            b = _mm512_or_si512(b, _mm512_maskz_permutex2var_epi16(
                p->mask[n + 1], src[2 * p->pair[n + 1]], p->index[n + 1],
                src[2 * p->pair[n + 1] + 1]));
        }
        if (n < end)
            a = _mm512_or_si512(a, _mm512_maskz_permutex2var_epi16(
                p->mask[n], src[2 * p->pair[n]], p->index[n], src[2 * p->pair[n] + 1]));
        _mm512_mask_storeu_epi16(to + 32 * t, first32(p->targets - 32 * t), _mm512_or_si512(a, b));
    }
}

/* How a row of inputs becomes the groups' columns in bfloat16, in the groups' order: each
 * group's column list in turn, from an even word (a group with an odd fan-in gets a zero
 * word after it), so its pairs are whole 32-bit words; and, for the input gradient, back. */
typedef struct {
    int64_t words;    /* words a packed row has (even) */
    int64_t sources;  /* 32-word registers of a row converted in its own order */
    int64_t *start;   /* [groups]: a group's first word */
    Perm in;          /* a converted row → the groups' order */
    Perm back;        /* the groups' order → the row's own: the input gradient */
} Plan;

static void plan_free(Plan *plan)
{
    free(plan->start);
    perm_free(&plan->in);
    perm_free(&plan->back);
}

/* The plan's words and starts, and the permutations asked for: ``in`` for the forward's
 * packing, ``back`` for the input gradient (the backward reads the forward's packed rows,
 * so it never needs ``in``). */
static int plan_make(Plan *plan, const Group *groups, int64_t count, const int32_t *cols,
                     int64_t in_f, int in, int back, int amx)
{
    memset(plan, 0, sizeof(*plan));
    plan->start = (int64_t *)malloc((size_t)count * sizeof(int64_t));
    if (!plan->start)
        return 0;
    const int64_t words = group_starts(groups, count, amx, plan->start);
    plan->words = words;
    plan->sources = (in_f + 31) / 32;
    int64_t *from = (int64_t *)malloc((size_t)(words > in_f ? words : in_f) * sizeof(int64_t));
    if (!from) {
        plan_free(plan);
        return 0;
    }
    int ok = 1;
    if (in) {
        for (int64_t w = 0; w < words; w++)
            from[w] = -1;
        for (int64_t g = 0; g < count; g++)
            for (int64_t d = 0; d < groups[g].k; d++)
                from[plan->start[g] + d] = cols[groups[g].coff + d];
        ok = perm_make(&plan->in, from, words, in_f, 32);
    }
    if (ok && back) {
        for (int64_t c = 0; c < in_f; c++)
            from[c] = -1;
        for (int64_t g = 0; g < count; g++)
            for (int64_t d = 0; d < groups[g].k; d++)
                from[cols[groups[g].coff + d]] = plan->start[g] + d;
        ok = perm_make(&plan->back, from, in_f, words, 32);
    }
    free(from);
    if (!ok)
        plan_free(plan);
    return ok;
}

/* Row ``row`` of inputs (in_f floats, or bfloat16 words with ``half``) packed: to[w] for w < plan->words (32-bit aligned); src
 * holds plan->sources + 1 registers. */
BF16 static void plan_row(const Plan *plan, const void *x, int half, int64_t row, int64_t in_f,
                          uint16_t *to, __m512i *src)
{
    for (int64_t r = 0; r < plan->sources; r++) {
        const int64_t at = 32 * r;
        if (half)
            src[r] = _mm512_maskz_loadu_epi16(in_f - at >= 32 ? 0xFFFFFFFFu : ((1u << (in_f - at)) - 1),
                                              (const uint16_t *)x + row * in_f + at);
        else
            src[r] = in_order(load(x, row * in_f + at, first(in_f - at), 0),
                              load(x, row * in_f + at + LANES, first(in_f - at - LANES), 0));
    }
    src[plan->sources] = _mm512_setzero_si512();
    perm_words(&plan->in, src, to);
}

/* The pairs a product's operands are laid out with along its depth: ⌈depth / 2⌉, or with
 * ``amx`` that rounded up to whole tiles (zeros after the real pairs). */
static int64_t depth_pairs(int64_t depth, int amx)
{
    const int64_t pairs = (depth + 1) / 2;
    return amx ? (pairs + AMX_PAIRS - 1) / AMX_PAIRS * AMX_PAIRS : pairs;
}

/* out = a · b (+ init) on the register tile, or on AMX tiles (operands padded as
 * depth_pairs says; scratch: AMX_PAIRS rows of their pairs). */
BF16 static void multiply(int amx, const pair *ap, int64_t lda, int64_t pairs, int64_t rows,
                          const pair *bp, int64_t stride, int64_t width, const float *init,
                          int64_t ld_init, void *out, int half, int64_t ldo, int64_t ocol0,
                          pair *scratch)
{
    if (amx)
        grouped_amx_products(ap, lda, pairs / AMX_PAIRS, rows, bp, stride, width, init,
                             ld_init, out, half, ldo, ocol0, scratch);
    else
        products(ap, lda, 1, pairs, rows, bp, stride, width, init, ld_init, out, half, ldo,
                 ocol0);
}

BF16 int grouped_bf16_forward(const void *x, const int32_t *cols, const float *kernel,
                              const float *bias, const Group *groups, int64_t count, void *out,
                              int64_t rows, int64_t in_f, int64_t out_f, int x_half, int out_half,
                              uint16_t *packed, int amx)
{
    int64_t kmax, nmax;
    widest(groups, count, &kmax, &nmax);
    Plan plan;
    if (!plan_make(&plan, groups, count, cols, in_f, 1, 0, amx))
        return 0;
    const int64_t lda = plan.words / 2;
    pair *ap = (pair *)packed;
    pair *bp = aligned_pairs(panels_of(nmax) * depth_pairs(kmax, amx) * LANES);
    pair *scratch = amx ? aligned_pairs(AMX_PAIRS * depth_pairs(kmax, amx)) : NULL;
    __m512i *src = (__m512i *)aligned_pairs((plan.sources + 1) * LANES);
    if (!bp || !src || (amx && !scratch)) {
        free(bp);
        free(scratch);
        free(src);
        plan_free(&plan);
        return 0;
    }
    for (int64_t r = 0; r < rows; r++)
        plan_row(&plan, x, x_half, r, in_f, (uint16_t *)(ap + r * lda), src);
    if (amx)
        grouped_amx_begin();
    for (int64_t g = 0; g < count; g++) {
        const Group *G = &groups[g];
        const int64_t pairs = depth_pairs(G->k, amx);
        pack_panels(bp, pairs * LANES, kernel + G->koff, 0, G->n, G->k, G->n);
        zero_pads(bp, pairs * LANES, panels_of(G->n), (G->k + 1) / 2);
        multiply(amx, ap + plan.start[g] / 2, lda, pairs, rows, bp, pairs * LANES, G->n,
                 bias ? bias + G->o0 : NULL, 0, out, out_half, out_f, G->o0, scratch);
    }
    if (amx)
        grouped_amx_end();
    free(bp);
    free(scratch);
    free(src);
    plan_free(&plan);
    return 1;
}

/* Word k of a and b side by side: lanes (a[k], b[k]) for k < 16 (LOW) or 16 ≤ k < 32 (HIGH). */
static const uint16_t INTERLEAVE_LOW[32] __attribute__((aligned(64))) = {
    0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
    8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47,
};
static const uint16_t INTERLEAVE_HIGH[32] __attribute__((aligned(64))) = {
    16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
    24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63,
};

/* Rows start … start + n_rows of the gradient's columns of group G in panels (gp: CHUNK / 2
 * pairs each, zero past the rows' pairs — what an AMX tile reads past them). */
BF16 static void pack_grad_chunk(pair *gp, const void *grad, int grad_half, int64_t out_f,
                                 int64_t start, int64_t n_rows, const Group *G)
{
    const int64_t stride = CHUNK / 2 * LANES;
    pack_panels(gp, stride, (const char *)grad + (start * out_f + G->o0) * (grad_half ? 2 : 4),
                grad_half, out_f, n_rows, G->n);
    zero_pads(gp, stride, panels_of(G->n), (n_rows + 1) / 2);
}

/* The kernel gradients of every group: gw[d, j] = Σ_m x[m, cols[d]] · grad[m, o0 + j], the
 * rows in chunks of CHUNK. The inputs come as the forward packed them (``packed``: a row's
 * words in the groups' order, plan->words a row); a chunk's rows are laid side by side in
 * pairs, xq[q · words + w] = (row 2q, row 2q + 1) of word w, so a group's kernel row d reads
 * its pairs ``words`` apart. Its gradient goes into panels (gp); the sums are stored between
 * chunks and added to in row order. */
BF16 static void kernel_grads(const Plan *plan, const uint16_t *packed, const void *grad,
                              int grad_half, int64_t out_f, const Group *groups, int64_t count,
                              float *grad_kernel, int64_t rows, pair *xq, pair *gp)
{
    const int64_t half = CHUNK / 2, words = plan->words;
    const __m512i low = _mm512_load_si512(INTERLEAVE_LOW), high = _mm512_load_si512(INTERLEAVE_HIGH);
    for (int64_t start = 0; start < rows; start += CHUNK) {
        const int64_t n_rows = start + CHUNK < rows ? CHUNK : rows - start;
        const int64_t pairs = (n_rows + 1) / 2;
        for (int64_t q = 0; q < pairs; q++) {
            const uint16_t *even = packed + (start + 2 * q) * words, *odd = even + words;
            const int has_odd = 2 * q + 1 < n_rows;
            for (int64_t w = 0; w < words; w += 32) {
                const __mmask32 m = first32(words - w);
                const __m512i e = _mm512_maskz_loadu_epi16(m, even + w);
                const __m512i o = has_odd ? _mm512_maskz_loadu_epi16(m, odd + w)
                                          : _mm512_setzero_si512();
                pair *to = xq + q * words + w;
                _mm512_mask_storeu_epi32(to, first(words - w), _mm512_permutex2var_epi16(e, low, o));
                _mm512_mask_storeu_epi32(to + LANES, first(words - w - LANES),
                                         _mm512_permutex2var_epi16(e, high, o));
            }
        }
        for (int64_t g = 0; g < count; g++) {
            const Group *G = &groups[g];
            float *gw = grad_kernel + G->koff;
            pack_grad_chunk(gp, grad, grad_half, out_f, start, n_rows, G);
            products(xq + plan->start[g], 1, words, pairs, G->k, gp, half * LANES, G->n,
                     start ? gw : NULL, G->n, gw, 0, G->n, 0);
        }
    }
}

/* 16 × 16 32-bit elements transposed in registers: r[c] becomes what was column c. */
BF16 static inline void transpose16(__m512i r[LANES])
{
    __m512i t[LANES], u[LANES];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    /* u[4k + m], 128-bit lane L: rows 4k … 4k + 3 of column 4L + m */
    for (int k = 0; k < 4; k++) {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int m = 0; m < 4; m++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0x44);
        const __m512i x1 = _mm512_shuffle_i32x4(u[m], u[4 + m], 0xEE);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0x44);
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + m], u[12 + m], 0xEE);
        r[m] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
        r[8 + m] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
}

/* Words w0 … w0 + 15 of 16 pairs of packed rows from ``first`` (rows from ``end`` on read as
 * zero), transposed: to[t · ld + i] = (row first + 2i, row first + 2i + 1) of word w0 + t. */
BF16 static void transposed_block(const uint16_t *packed, int64_t words, int64_t first,
                                  int64_t end, int64_t w0, pair *to, int64_t ld)
{
    __m512i r[LANES];
    for (int i = 0; i < LANES; i++) {
        const int64_t even = first + 2 * i;
        const __m512i e = even < end ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                           (const __m256i *)(packed + even * words + w0)))
                                     : _mm512_setzero_si512();
        const __m512i o = even + 1 < end ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                               (const __m256i *)(packed + (even + 1) * words + w0)))
                                         : _mm512_setzero_si512();
        r[i] = _mm512_or_si512(e, _mm512_slli_epi32(o, 16));
    }
    transpose16(r);
    for (int t = 0; t < LANES; t++)
        _mm512_storeu_si512(to + t * ld, r[t]);
}

/* kernel_grads on AMX tiles: the same sums, a chunk's rows transposed instead —
 * xt[w · half + q] = (row 2q, row 2q + 1) of word w, zero past the chunk's rows — so that a
 * group's kernel rows are a tile's rows with their row pairs side by side. */
BF16 static void kernel_grads_amx(const Plan *plan, const uint16_t *packed, const void *grad,
                                  int grad_half, int64_t out_f, const Group *groups,
                                  int64_t count, float *grad_kernel, int64_t rows, pair *xt,
                                  pair *gp, pair *scratch)
{
    const int64_t half = CHUNK / 2, words = plan->words;
    for (int64_t start = 0; start < rows; start += CHUNK) {
        const int64_t n_rows = start + CHUNK < rows ? CHUNK : rows - start;
        const int64_t pairs = depth_pairs(n_rows, 1);
        for (int64_t q0 = 0; q0 < pairs; q0 += LANES)
            for (int64_t w0 = 0; w0 < words; w0 += LANES)
                transposed_block(packed, words, start + 2 * q0, start + n_rows, w0,
                                 xt + w0 * half + q0, half);
        for (int64_t g = 0; g < count; g++) {
            const Group *G = &groups[g];
            float *gw = grad_kernel + G->koff;
            pack_grad_chunk(gp, grad, grad_half, out_f, start, n_rows, G);
            grouped_amx_products(xt + plan->start[g] * half, half, pairs / AMX_PAIRS, G->k, gp,
                                 half * LANES, G->n, start ? gw : NULL, G->n, gw, 0, G->n, 0,
                                 scratch);
        }
    }
}

/* grad_x's rows from gl's (the groups' order in bfloat16, ldl words apart, as torch's
 * bfloat16 products round the input gradient too), widened to float32 unless ``half``;
 * src and row: scratch. */
BF16 static void put_back(const Plan *plan, const uint16_t *gl, int64_t ldl, void *grad_x,
                          int half, int64_t in_f, int64_t rows, __m512i *src, uint16_t *row)
{
    const int64_t regs = (plan->words + 31) / 32;
    for (int64_t m = 0; m < rows; m++) {
        const uint16_t *from = gl + m * ldl;
        for (int64_t r = 0; r < regs; r++)
            src[r] = _mm512_maskz_loadu_epi16(first32(plan->words - 32 * r), from + 32 * r);
        src[regs] = _mm512_setzero_si512();
        if (half) {
            perm_words(&plan->back, src, (uint16_t *)grad_x + m * in_f);
            continue;
        }
        perm_words(&plan->back, src, row);
        float *to = (float *)grad_x + m * in_f;
        for (int64_t c = 0; c < in_f; c += LANES)
            _mm512_mask_storeu_ps(to + c, first(in_f - c), load(row, c, first(in_f - c), 1));
    }
}

BF16 int grouped_bf16_backward(const uint16_t *packed, const int32_t *cols, const float *kernel,
                               const void *grad, const Group *groups, int64_t count,
                               void *grad_x, float *grad_kernel, int64_t rows, int64_t in_f,
                               int64_t out_f, int x_half, int grad_half, int amx)
{
    int64_t kmax, nmax;
    widest(groups, count, &kmax, &nmax);
    const int64_t half = CHUNK / 2;
    Plan plan;
    if (!plan_make(&plan, groups, count, cols, in_f, 0, grad_x != NULL, amx))
        return 0;
    const int64_t npairs = depth_pairs(nmax, amx);
    pair *ap = grad_x ? aligned_pairs(rows * npairs) : NULL;
    pair *bp = grad_x ? aligned_pairs(panels_of(kmax) * npairs * LANES) : NULL;
    pair *row = grad_x ? aligned_pairs(npairs + LANES) : NULL;
    /* gl's rows an odd number of cache lines apart: rows a multiple of 4 KB apart (or
     * nearly) land in the same cache sets, and a tile's six stores evict each other */
    const int64_t lines = (plan.words + 31) / 32, ldl = 32 * (lines + (lines % 2 ? 0 : 1));
    uint16_t *gl = grad_x ? (uint16_t *)aligned_pairs(rows * ldl / 2) : NULL;
    uint16_t *wide = grad_x ? (uint16_t *)aligned_pairs(in_f / 2 + 32) : NULL;
    __m512i *back = grad_x ? (__m512i *)aligned_pairs(((plan.words + 31) / 32 + 2) * LANES) : NULL;
    pair *xq = grad_kernel ? aligned_pairs(half * plan.words) : NULL;
    pair *gp = grad_kernel ? aligned_pairs(panels_of(nmax) * half * LANES) : NULL;
    const int64_t widest_pairs = depth_pairs(nmax > CHUNK ? nmax : CHUNK, amx);
    pair *scratch = amx ? aligned_pairs(AMX_PAIRS * widest_pairs) : NULL;
    int ok = (!grad_x || (ap && bp && row && gl && back && wide)) && (!grad_kernel || (xq && gp))
             && (!amx || scratch);
    if (ok && amx)
        grouped_amx_begin();
    for (int64_t g = 0; ok && grad_x && g < count; g++) {
        /* grad_x[m, cols[d]] = Σ_j grad[m, o0 + j] · kernel[d, j], written in the groups'
         * order (gl, the forward's packed words in float32), then put back in place */
        const Group *G = &groups[g];
        const int64_t pairs = depth_pairs(G->n, amx);
        pack_rows(ap, pairs, grad, grad_half, out_f, rows, G->o0, G->n);
        pack_panels_transposed(bp, pairs * LANES, kernel + G->koff, G->k, G->n, row);
        multiply(amx, ap, pairs, pairs, rows, bp, pairs * LANES, G->k, NULL, 0, gl, 1, ldl,
                 plan.start[g], scratch);
    }
    if (ok && grad_x)
        put_back(&plan, gl, ldl, grad_x, x_half, in_f, rows, back, wide);
    if (ok && grad_kernel) {
        if (amx)
            kernel_grads_amx(&plan, packed, grad, grad_half, out_f, groups, count, grad_kernel,
                             rows, xq, gp, scratch);
        else
            kernel_grads(&plan, packed, grad, grad_half, out_f, groups, count, grad_kernel,
                         rows, xq, gp);
    }
    if (ok && amx)
        grouped_amx_end();
    free(ap);
    free(bp);
    free(row);
    free(gl);
    free(back);
    free(wide);
    free(xq);
    free(gp);
    free(scratch);
    plan_free(&plan);
    return ok;
}
