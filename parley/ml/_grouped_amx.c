/* The grouped layers' bfloat16 products on AMX tiles (Intel Sapphire Rapids and later).
 *
 * Part of parley.ml._grouped: _grouped_bf16.c packs the operands (a layer's inputs in the
 * groups' order, each group's kernel in panels of 16 outputs × pairs of rows) and calls
 * grouped_amx_products for each group's product instead of its AVX-512 register tile when
 * the call asks for AMX. One ``tdpbf16ps`` multiplies a 16 × 32 bfloat16 tile by a 32 × 16
 * one into 16 × 16 float32 sums: 8,192 products, where an AVX-512 ``vdpbf16ps`` does 32.
 * torch's other path on these CPUs, one dense product with the groups' kernels laid into a
 * zero-filled matrix (oneDNN's AMX kernels), multiplies by every zero: 1/density times the
 * arithmetic (5× at Rasa's default 0.2); here only the groups' blocks are multiplied, each
 * padded to whole tiles (a 52-wide group to 64).
 *
 * Operands hold zeros past their real pairs (the packing puts each group's words on a
 * 32-word boundary, zero-filled between groups), so a tile never reads another group's
 * numbers. Each output's sum runs over its tiles in order, then the bias (or the sums of
 * earlier row chunks) is added: the same bits on every call and thread, not oneDNN's, so
 * the model's fingerprint names this kernel. (That addition is an ordinary AVX-512 one:
 * a thread that flushes denormals — torch.set_flush_denormal — flushes a denormal bias
 * there; the tiles' own products always do, as the register tiles' ``vdpbf16ps`` does.)
 */
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "_grouped.h"

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#define TILE 16  /* a tile's rows; the pairs a row of A holds; the float32 sums a row of C holds */

/* Linux lends a process the tiles' 8 KB of register state only when asked (arch_prctl). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int grouped_amx_supported(void)
{
    static int known = -1;  /* (a race only asks twice) */
    if (known >= 0)
        return known;
    unsigned a, b, c, d;
    int cpu = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) /* AMX-BF16 */
              && (d & (1u << 24)) /* AMX-TILE */ && grouped_bf16_supported();
    known = cpu && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    return known;
}

/* The tile registers' shapes, set for a call: every tile 16 rows of 64 bytes. tmm0–3 hold
 * sums (two row blocks × two panels), tmm4–5 the left operand's row blocks, tmm6–7 the
 * right operand's panels. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileConfig;

AMX void grouped_amx_begin(void)
{
    TileConfig config __attribute__((aligned(64)));
    memset(&config, 0, sizeof(config));
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = TILE;
    }
    /* (GCC 12 takes ldtilecfg for a reader of the palette byte alone and drops the other
     * stores without this) */
    __asm__ volatile("" : : "m"(config) : "memory");
    _tile_loadconfig(&config);
}

AMX void grouped_amx_end(void)
{
    _tile_release();
}

static inline __mmask16 lanes(int64_t n)
{
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
}

/* A tile's sums (16 × 16 float32 at c) into rows m0 … m0 + live of out, columns
 * ocol0 + col … (width live), each plus its init (a row ld_init apart; 0: the bias). */
AMX static void put(const float *c, int live, int64_t m0, int64_t col, int64_t width,
                    const float *init, int64_t ld_init, void *out, int half, int64_t ldo,
                    int64_t ocol0)
{
    const __mmask16 m = lanes(width - col);
    for (int i = 0; i < live; i++) {
        __m512 v = _mm512_load_ps(c + TILE * i);
        if (init)
            v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, init + (m0 + i) * ld_init + col), v);
        const int64_t at = (m0 + i) * ldo + ocol0 + col;
        if (half)
            _mm256_mask_storeu_epi16((uint16_t *)out + at, m, (__m256i)_mm512_cvtneps_pbh(v));
        else
            _mm512_mask_storeu_ps((float *)out + at, m, v);
    }
}

/* Rows m0 … of the left operand as a tile reads them: in place when 16 rows are there,
 * else copied with zero rows after them into ``scratch`` (16 rows of 16 · ktiles pairs). */
static const uint32_t *block(const uint32_t *ap, int64_t lda, int64_t ktiles, int64_t rows,
                             int64_t m0, uint32_t *scratch, int64_t *ld)
{
    if (m0 + TILE <= rows) {
        *ld = lda;
        return ap + m0 * lda;
    }
    const int64_t width = TILE * ktiles;
    memset(scratch, 0, (size_t)(TILE * width) * sizeof(uint32_t));
    for (int64_t m = m0; m < rows; m++)
        memcpy(scratch + (m - m0) * width, ap + m * lda, (size_t)width * sizeof(uint32_t));
    *ld = width;
    return scratch;
}

AMX void grouped_amx_products(const uint32_t *ap, int64_t lda, int64_t ktiles, int64_t rows,
                              const uint32_t *bp, int64_t stride, int64_t width,
                              const float *init, int64_t ld_init, void *out, int half,
                              int64_t ldo, int64_t ocol0, uint32_t *scratch)
{
    float c[4][TILE * TILE] __attribute__((aligned(64)));
    const int64_t panels = (width + TILE - 1) / TILE;
    for (int64_t m0 = 0; m0 < rows; m0 += 2 * TILE) {
        const int two_rows = m0 + TILE < rows;
        int64_t ld0, ld1 = 0;
        const uint32_t *a0 = block(ap, lda, ktiles, rows, m0, scratch, &ld0);
        /* (the scratch holds one block: only the last block can need it) */
        const uint32_t *a1 = two_rows ? block(ap, lda, ktiles, rows, m0 + TILE, scratch, &ld1)
                                      : NULL;
        /* (GCC's tile loads and stores are asm with no memory operand: without a barrier the
         * copy into the scratch could be moved past the loads that read it, and the reads of
         * ``c`` before the stores that fill it) */
        __asm__ volatile("" : : : "memory");
        const int live0 = (int)(rows - m0 < TILE ? rows - m0 : TILE);
        const int live1 = two_rows ? (int)(rows - m0 - TILE < TILE ? rows - m0 - TILE : TILE) : 0;
        for (int64_t p = 0; p < panels; p += 2) {
            const int two = p + 1 < panels;
            const uint32_t *b0 = bp + p * stride, *b1 = b0 + stride;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t kt = 0; kt < ktiles; kt++) {
                _tile_loadd(4, a0 + TILE * kt, ld0 * 4);
                _tile_loadd(6, b0 + TILE * TILE * kt, 64);
                _tile_dpbf16ps(0, 4, 6);
                if (two) {
                    _tile_loadd(7, b1 + TILE * TILE * kt, 64);
                    _tile_dpbf16ps(1, 4, 7);
                }
                if (two_rows) {
                    _tile_loadd(5, a1 + TILE * kt, ld1 * 4);
                    _tile_dpbf16ps(2, 5, 6);
                    if (two)
                        _tile_dpbf16ps(3, 5, 7);
                }
            }
            _tile_stored(0, c[0], 64);
            _tile_stored(1, c[1], 64);
            _tile_stored(2, c[2], 64);
            _tile_stored(3, c[3], 64);
            __asm__ volatile("" : : : "memory");
            put(c[0], live0, m0, p * TILE, width, init, ld_init, out, half, ldo, ocol0);
            if (two)
                put(c[1], live0, m0, (p + 1) * TILE, width, init, ld_init, out, half, ldo, ocol0);
            if (two_rows) {
                put(c[2], live1, m0 + TILE, p * TILE, width, init, ld_init, out, half, ldo, ocol0);
                if (two)
                    put(c[3], live1, m0 + TILE, (p + 1) * TILE, width, init, ld_init, out, half,
                        ldo, ocol0);
            }
        }
    }
}
