/* What parley/ml/_grouped.c and parley/ml/_grouped_bf16.c share: a layer's group table and
 * the bfloat16 products' entry points (see _grouped_bf16.c). */
#ifndef PARLEY_GROUPED_H
#define PARLEY_GROUPED_H

#include <stdint.h>

typedef struct {
    int64_t k, n, o0, koff, coff;  /* fan-in, width, first output column, kernel offset, column-list offset */
} Group;

/* Whether this CPU runs the bfloat16 products (AVX-512 F/BW/VL and AVX512_BF16). */
int grouped_bf16_supported(void);

/* The words a row of inputs packs into (grouped_bf16_forward's ``packed``): each group's
 * fan-in, rounded up to even — with ``amx`` to a whole number of tile rows (2 · AMX_PAIRS). */
int64_t grouped_bf16_words(const Group *groups, int64_t count, int amx);

/* As forward / backward in _grouped.c, with bfloat16 products; 0 when memory ran out. Called
 * without the interpreter lock, on checked sizes. x (and grad_x), grad and out are float32,
 * or bfloat16 where their *_half flag says so; kernel, bias and grad_kernel float32. The
 * forward packs x into ``packed`` (rows × grouped_bf16_words bfloat16), which the backward
 * takes in x's place. */
int grouped_bf16_forward(const void *x, const int32_t *cols, const float *kernel,
                         const float *bias, const Group *groups, int64_t count, void *out,
                         int64_t rows, int64_t in_f, int64_t out_f, int x_half, int out_half,
                         uint16_t *packed, int amx);
int grouped_bf16_backward(const uint16_t *packed, const int32_t *cols, const float *kernel,
                          const void *grad, const Group *groups, int64_t count,
                          void *grad_x, float *grad_kernel, int64_t rows, int64_t in_f,
                          int64_t out_f, int x_half, int grad_half, int amx);

/* The products on AMX tiles (_grouped_amx.c), with ``amx`` above. */
#define AMX_PAIRS 16  /* the bfloat16 pairs a tile row holds */

/* Whether this CPU and the OS let the process use AMX tiles with bfloat16 (asks Linux for
 * the tiles' state once). */
int grouped_amx_supported(void);

/* A call's products run between begin (sets the tiles' shapes) and end (lets them go). */
void grouped_amx_begin(void);
void grouped_amx_end(void);

/* out[m, ocol0 + j] = (init[m · ld_init + j] +) Σ_q ap[m · lda + q] · b(q, j) for m < rows,
 * j < width, q < AMX_PAIRS · ktiles (both operands zero past their real pairs); b: panels
 * of 16 columns, panel p at bp + p · stride pairs, its pair q at + 16q. out float32, or
 * bfloat16 with ``half``. scratch: AMX_PAIRS · ktiles pairs for each of 16 rows. */
void grouped_amx_products(const uint32_t *ap, int64_t lda, int64_t ktiles, int64_t rows,
                          const uint32_t *bp, int64_t stride, int64_t width,
                          const float *init, int64_t ld_init, void *out, int half,
                          int64_t ldo, int64_t ocol0, uint32_t *scratch);

#endif
