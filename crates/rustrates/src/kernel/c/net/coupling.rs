//! The C text of the couplings: dense and CSR row routines, the delay ring's reads, and the
//! emitters of delayed and scaled couplings.

use std::fmt::Write as _;

use super::super::emit::{indent_by, Ty};
use crate::model::network::{Coupling, Population, Scale};
use crate::model::Layout;

use super::layout::{CouplingAt, Delayed};
use super::loops::{array, row};

/// Lanes per accumulator chunk of a coupling row: four rows of 16 doubles fill the sixteen
/// 256-bit registers of AVX2, so the partial sums stay in registers.
pub(super) const CHUNK: usize = 16;

/// Helpers per precision (`RTYPE` replaced by the C type, `_SFX` by `_d` or `_f`).
pub(super) const HELPERS: &str = r#"
/* Whole chunks use explicit vectors of lanes (GCC/Clang vector extensions): left to itself
   the vectoriser may vectorise over columns with gathers instead of over lanes. */
typedef RTYPE rr_v_SFX __attribute__((vector_size(64), aligned(sizeof(RTYPE)), may_alias));
#define RR_VW_SFX (64 / (int)sizeof(RTYPE))
#define RR_NV_SFX (RR_CHUNK / RR_VW_SFX)

/* One coupling row over lanes l0 .. l0+m: O = E + sum_k CW[k] * SRC[CJ[k]], in k order;
   m = nv vectors of lanes (nv a constant after inlining), or any m lane by lane (nv = 0). */
static inline __attribute__((always_inline)) void rr_row_SFX(size_t lanes, size_t l0, size_t m, int nv,
        const RTYPE* restrict E, RTYPE* restrict O, const RTYPE* restrict SRC, const unsigned long long* restrict CJ,
        const double* restrict CW, size_t k0, size_t k1) {
    if (nv > 0) {
        rr_v_SFX acc[RR_NV_SFX];
        for (int q = 0; q < nv; q++) acc[q] = *(const rr_v_SFX*)(E + l0 + q * RR_VW_SFX);
        for (size_t k = k0; k < k1; k++) {
            const RTYPE w = (RTYPE)CW[k];
            const rr_v_SFX* x = (const rr_v_SFX*)(SRC + (size_t)CJ[k] * lanes + l0);
            for (int q = 0; q < nv; q++) acc[q] = acc[q] + w * x[q];
        }
        for (int q = 0; q < nv; q++) *(rr_v_SFX*)(O + l0 + q * RR_VW_SFX) = acc[q];
        return;
    }
    RTYPE acc[RR_CHUNK];
    for (size_t l = 0; l < m; l++) acc[l] = E[l0 + l];
    for (size_t k = k0; k < k1; k++) {
        const RTYPE w = (RTYPE)CW[k];
        const RTYPE* restrict x = SRC + (size_t)CJ[k] * lanes + l0;
        for (size_t l = 0; l < m; l++) acc[l] = acc[l] + w * x[l];
    }
    for (size_t l = 0; l < m; l++) O[l0 + l] = acc[l];
}
/* A row over all lanes: whole chunks, then whole vectors, then the rest lane by lane. */
static inline __attribute__((always_inline)) void rr_row_all_SFX(size_t lanes, const RTYPE* restrict E,
        RTYPE* restrict O, const RTYPE* restrict SRC, const unsigned long long* restrict CJ,
        const double* restrict CW, size_t k0, size_t k1) {
    size_t l0 = 0;
    for (; l0 + RR_CHUNK <= lanes; l0 += RR_CHUNK) rr_row_SFX(lanes, l0, RR_CHUNK, RR_NV_SFX, E, O, SRC, CJ, CW, k0, k1);
    for (; l0 + RR_VW_SFX <= lanes; l0 += RR_VW_SFX) rr_row_SFX(lanes, l0, RR_VW_SFX, 1, E, O, SRC, CJ, CW, k0, k1);
    if (l0 < lanes) rr_row_SFX(lanes, l0, lanes - l0, 0, E, O, SRC, CJ, CW, k0, k1);
}
static void rr_csr_SFX(size_t lanes, const RTYPE* restrict E, RTYPE* restrict O, const RTYPE* restrict SRC,
        const unsigned long long* restrict CJ, const double* restrict CW, size_t k0, size_t k1) {
    rr_row_all_SFX(lanes, E, O, SRC, CJ, CW, k0, k1);
}
/* Rows 0 .. R-1 (R <= 8) of a dense coupling over the vector of lanes at l0 (rows es / os
   elements apart in E / O), each summed in column order exactly as rr_row_SFX would: every
   loaded source vector serves R accumulators. Column k reads SRC + CJ[k]*lanes, or, when the
   sources are evenly spaced (ss > 0 elements apart, the usual layout of a population's
   variable), walks a pointer instead of loading an index per column. Eight rows of one vector
   took 25-35 % less CPU time than four rows of two vectors (the earlier blocking) in a
   microbenchmark of the products of N = 68 x 64 lanes and N = 200 x 16 lanes. */
static inline __attribute__((always_inline)) void rr_rows_SFX(size_t lanes, size_t l0, int R,
        const RTYPE* restrict E, size_t es, RTYPE* restrict O, size_t os, const RTYPE* restrict SRC,
        const unsigned long long* restrict CJ, size_t ss, const double* restrict W, size_t ncols) {
    rr_v_SFX a[8];
    for (int r = 0; r < R; r++) a[r] = *(const rr_v_SFX*)(E + (size_t)r * es + l0);
    if (ss > 0) {
        const RTYPE* x = SRC + (size_t)CJ[0] * lanes + l0;
        for (size_t k = 0; k < ncols; k++, x += ss) {
            const rr_v_SFX v = *(const rr_v_SFX*)x;
            for (int r = 0; r < R; r++) a[r] = a[r] + (RTYPE)W[(size_t)r * ncols + k] * v;
        }
    } else {
        for (size_t k = 0; k < ncols; k++) {
            const rr_v_SFX v = *(const rr_v_SFX*)(SRC + (size_t)CJ[k] * lanes + l0);
            for (int r = 0; r < R; r++) a[r] = a[r] + (RTYPE)W[(size_t)r * ncols + k] * v;
        }
    }
    for (int r = 0; r < R; r++) *(rr_v_SFX*)(O + (size_t)r * os + l0) = a[r];
}
/* A row whose terms may read a source's past through the solver (rr_past, as the unrolled
   code does); lane by lane. DV[k]: the variable read with delay DD[k], or ~0 for SRC now. */
static void rr_delayed_SFX(size_t lanes, double t, void* ctx, const RTYPE* restrict E, RTYPE* restrict O,
        const RTYPE* restrict SRC, const unsigned long long* restrict CJ, const double* restrict CW,
        const unsigned long long* restrict DV, const double* restrict DD, size_t k0, size_t k1) {
    for (size_t l = 0; l < lanes; l++) {
        RTYPE acc = E[l];
        for (size_t k = k0; k < k1; k++) {
            const RTYPE x = DV[k] == ~0ULL ? SRC[(size_t)CJ[k] * lanes + l]
                                          : (RTYPE)rr_past(ctx, (unsigned)DV[k], l, t, (double)(RTYPE)DD[k]);
            acc = acc + (RTYPE)CW[k] * x;
        }
        O[l] = acc;
    }
}
/* SS: the sources' spacing in slots when evenly spaced, else 0 (see rr_rows_SFX). Vector by
   vector of lanes, eight rows at a time, then four, then one. */
static void rr_dense_SFX(size_t lanes, size_t n, const RTYPE* restrict E, size_t es, RTYPE* restrict O, size_t os,
        const RTYPE* restrict SRC, const unsigned long long* restrict CJ, size_t SS, const double* restrict W,
        size_t ncols) {
    const size_t vectors = lanes / RR_VW_SFX * RR_VW_SFX, ss = SS * lanes;
    for (size_t l0 = 0; l0 < vectors; l0 += RR_VW_SFX) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) rr_rows_SFX(lanes, l0, 8, E + i * es, es, O + i * os, os, SRC, CJ, ss, W + i * ncols, ncols);
        for (; i + 4 <= n; i += 4) rr_rows_SFX(lanes, l0, 4, E + i * es, es, O + i * os, os, SRC, CJ, ss, W + i * ncols, ncols);
        for (; i < n; i++) rr_rows_SFX(lanes, l0, 1, E + i * es, es, O + i * os, os, SRC, CJ, ss, W + i * ncols, ncols);
    }
    /* The lanes after the last whole vector (all of them in a sweep of fewer points than a
       vector holds), lane by lane: eight rows at a time, so eight independent sums are in
       flight instead of one dependent chain per row; each still adds its terms in column
       order, as rr_row_SFX does. */
    for (size_t l = vectors; l < lanes; l++) {
        size_t r = 0;
        for (; r + 8 <= n; r += 8) {
            RTYPE a[8];
            for (int q = 0; q < 8; q++) a[q] = E[(r + q) * es + l];
            const double* restrict w = W + r * ncols;
            for (size_t k = 0; k < ncols; k++) {
                const RTYPE x = SRC[(size_t)CJ[k] * lanes + l];
                for (int q = 0; q < 8; q++) a[q] = a[q] + (RTYPE)w[(size_t)q * ncols + k] * x;
            }
            for (int q = 0; q < 8; q++) O[(r + q) * os + l] = a[q];
        }
        for (; r < n; r++) rr_row_SFX(lanes, l, 1, 0, E + r * es, O + r * os, SRC, CJ, W + r * ncols, 0, ncols);
    }
}
"#;

/// The delay ring buffer (`kernel::ring::DelayRing`, `#[repr(C)]` view) and how one term reads
/// it, once per term and evaluation: every lane of a term reads the same delay, so the step and
/// the Hermite weights are computed here and the lane loop is a short sum. The same
/// operations, in the same order, as `DelayRing::value` and the solver's history.
pub(super) const RING: &str = r#"
typedef struct {
    const double* data; /* [h][x, m0, m1][slot][lane] (x only when planes is 1) */
    const double* extrapolate; /* [h][lane] */
    const double* init; /* [h][lane] */
    const long long* newest; /* [h]: step of the newest point, -1 none */
    const unsigned long long* newest_slot; /* [h]: its slot (newest % slots), so no division here */
    const unsigned* hist_of; /* by variable */
    const long long* whole; /* per delayed term: its delay in whole steps, -1 a fraction */
    long long now; /* the step this evaluation starts, -1 between steps */
    unsigned long long vars, slots, lanes;
    double dt;
    /* Terms whose delays differ per lane (NetData::lane_terms' order), [term][lane]: each
       lane's delay and its whole steps (-1: a fraction); per term the fewest and most whole
       steps over the lanes (-1: some lane's delay is a fraction). */
    const double* lane_delay;
    const long long* lane_whole;
    const long long* lane_kmin;
    const long long* lane_kmax;
    unsigned long long planes; /* per history: 3 (x, m0, m1), or 1 (a run reading whole steps only) */
} rr_ring;

/* kind 0: the source now; 1: the initial value a[l]; 2: a[l] + b[l]*w0 (extrapolated from
   the newest point); 3: w0*a[l] + w1*m0[l] + w2*b[l] + w3*m1[l] (Hermite on a step, a the
   step's value, b the next one's, m0/m1 its slopes); 4: a[l], the value of a whole step. */
typedef struct { const double* a; const double* b; const double* m0; const double* m1; double w0, w1, w2, w3; int kind; } rr_tap;

/* The slot of step m, counted back from the newest point's (m within the ring). */
static inline __attribute__((always_inline)) size_t rr_slot_of(const rr_ring* R, size_t h, size_t m) {
    const size_t S = (size_t)R->slots, ns = (size_t)R->newest_slot[h], back = (size_t)R->newest[h] - m;
    return ns >= back ? ns - back : ns + S - back;
}

/* The step lo (newest - 1 at most) with lo*dt <= tq < (lo+1)*dt, for 0 < tq < t_newest, and
   the Hermite weights w of tq on it: DelayRing::step_of and hermite_weights. */
static inline __attribute__((always_inline)) size_t rr_hermite_step(const rr_ring* R, long long newest, double tq,
        double w[4]) {
    const size_t last = (size_t)newest - 1;
    const double guess = floor(tq / R->dt);
    size_t lo = (isfinite(guess) && guess > 0.0) ? ((size_t)guess < last ? (size_t)guess : last) : 0;
    while (lo < last && (double)(lo + 1) * R->dt <= tq) lo++;
    while (lo > 0 && (double)lo * R->dt > tq) lo--;
    const double t0 = (double)lo * R->dt, t1 = (double)(lo + 1) * R->dt, step = t1 - t0;
    const double s = (tq - t0) / step, s2 = s * s, s3 = s2 * s;
    w[0] = 2.0 * s3 - 3.0 * s2 + 1.0;
    w[1] = (s3 - 2.0 * s2 + s) * step;
    w[2] = -2.0 * s3 + 3.0 * s2;
    w[3] = (s3 - s2) * step;
    return lo;
}

/* One lane's read of history h at t - delay (whole: the delay in whole steps, -1 a fraction),
   for terms whose lanes read different delays: DelayRing::value's rule and operations. */
static inline double rr_ring_lane(const rr_ring* R, size_t h, size_t l, double t, double delay, long long whole) {
    const size_t L = (size_t)R->lanes, S = (size_t)R->slots;
    const int at_step = R->now >= 0 && whole >= 0;
    const long long m = at_step ? R->now - whole : 0;
    const double tq = at_step ? (double)m * R->dt : t - delay;
    const long long newest = R->newest[h];
    if (newest < 0 || tq <= 0.0) return R->init[h * L + l];
    const double tn = (double)(size_t)newest * R->dt;
    const double* X = R->data + h * R->planes * S * L;
    if (tq >= tn) return X[(size_t)R->newest_slot[h] * L + l] + R->extrapolate[h * L + l] * (tq - tn);
    if (at_step) return X[rr_slot_of(R, h, (size_t)m) * L + l];
    double w[4];
    const size_t s0 = rr_slot_of(R, h, rr_hermite_step(R, newest, tq, w));
    const size_t s1 = s0 + 1 == S ? 0 : s0 + 1;
    return w[0] * X[s0 * L + l] + w[1] * X[(S + s0) * L + l] + w[2] * X[s1 * L + l] + w[3] * X[(2 * S + s0) * L + l];
}

/* whole: the term's delay in whole steps (-1: a fraction); with R->now >= 0 such a read takes
   the point of step now - whole (kernel::ring::whole_step_read). */
static inline __attribute__((always_inline)) rr_tap rr_ring_tap(const rr_ring* R, unsigned long long var, double t,
        double delay, long long whole) {
    rr_tap p = {0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0};
    if (var == ~0ULL) return p;
    const size_t L = (size_t)R->lanes, S = (size_t)R->slots;
    const size_t h = R->hist_of[var];
    const long long m = (R->now >= 0 && whole >= 0) ? R->now - whole : 0;
    const int at_step = R->now >= 0 && whole >= 0;
    const double tq = at_step ? (double)m * R->dt : t - delay;
    const long long newest = R->newest[h];
    if (newest < 0 || tq <= 0.0) {
        p.kind = 1;
        p.a = R->init + h * L;
        return p;
    }
    const double tn = (double)(size_t)newest * R->dt;
    const size_t ns = (size_t)R->newest_slot[h];
    const double* X = R->data + h * R->planes * S * L;
    if (tq >= tn) {
        p.kind = 2;
        p.a = X + ns * L;
        p.b = R->extrapolate + h * L;
        p.w0 = tq - tn;
        return p;
    }
    if (at_step) {
        p.kind = 4;
        p.a = X + rr_slot_of(R, h, (size_t)m) * L;
        return p;
    }
    double w[4];
    const size_t lo = rr_hermite_step(R, newest, tq, w);
    p.kind = 3;
    p.w0 = w[0];
    p.w1 = w[1];
    p.w2 = w[2];
    p.w3 = w[3];
    /* lo is within the ring (newest - lo < slots) */
    const size_t s0 = rr_slot_of(R, h, lo);
    const size_t s1 = s0 + 1 == S ? 0 : s0 + 1;
    p.a = X + s0 * L;
    p.b = X + s1 * L;
    p.m0 = X + (S + s0) * L;
    p.m1 = X + (2 * S + s0) * L;
    return p;
}
"#;

/// Per precision: a delayed coupling read from the ring, terms taken column by column (term
/// `c` of every row, then term `c + 1`), so each row still sums its terms in order (rounding
/// as the unrolled code) while, for rows reading the same sources, one source's past is read
/// by all targets in turn (as `network_grid.c` does).
pub(super) const RING_HELPERS: &str = r#"
/* O[l] += w * a[l] over the lanes, in explicit vectors of lanes: written as a plain loop and
   inlined into the term loop, GCC unrolled it lane by lane (scalar), the term loop's largest
   cost. The same operations per lane (the ring's double converted to RTYPE, times w, added). */
typedef double rr_vd_SFX __attribute__((vector_size(RR_VW_SFX * sizeof(double)), aligned(sizeof(double)), may_alias));
static inline __attribute__((always_inline)) void rr_axpy_SFX(size_t lanes, RTYPE* restrict O, RTYPE w,
        const double* restrict a) {
    size_t l = 0;
    for (; l + RR_VW_SFX <= lanes; l += RR_VW_SFX) {
        const rr_v_SFX x = __builtin_convertvector(*(const rr_vd_SFX*)(a + l), rr_v_SFX);
        *(rr_v_SFX*)(O + l) = *(const rr_v_SFX*)(O + l) + w * x;
    }
    for (; l < lanes; l++) O[l] = O[l] + w * (RTYPE)a[l];
}
static inline __attribute__((always_inline)) void rr_tap_add_SFX(size_t lanes, rr_tap p, RTYPE w,
        RTYPE* restrict O, const RTYPE* restrict now) {
    const double* restrict a = p.a;
    const double* restrict b = p.b;
    switch (p.kind) {
    case 0:
        for (size_t l = 0; l < lanes; l++) O[l] = O[l] + w * now[l];
        break;
    case 1:
    case 4:
        for (size_t l = 0; l < lanes; l++) O[l] = O[l] + w * (RTYPE)a[l];
        break;
    case 2: {
        const double d = p.w0;
        for (size_t l = 0; l < lanes; l++) O[l] = O[l] + w * (RTYPE)(a[l] + b[l] * d);
        break;
    }
    default: {
        const double* restrict m0 = p.m0;
        const double* restrict m1 = p.m1;
        const double w0 = p.w0, w1 = p.w1, w2 = p.w2, w3 = p.w3;
        for (size_t l = 0; l < lanes; l++)
            O[l] = O[l] + w * (RTYPE)(w0 * a[l] + w1 * m0[l] + w2 * b[l] + w3 * m1[l]);
    }
    }
}
#define RR_TAPS 64
#define RR_AHEAD 8
#define RR_PENDING 256
/* One term of an evaluation at a step start (R->now >= 0), added to Oi: a whole-step term
   (WS >= 0) reads its step's values (or the initial ones) directly; the rest (fractional
   delays, current values, reads at or after the newest point) take the general tap. */
static inline __attribute__((always_inline)) void rr_ring_term_SFX(size_t lanes, const rr_ring* restrict R,
        double t, RTYPE* restrict Oi, const RTYPE* restrict x_now, RTYPE w, unsigned long long var, double delay,
        long long d) {
    const size_t S = (size_t)R->slots;
    const double* restrict a;
    if (d >= 0 && var != ~0ULL) {
        const size_t h = R->hist_of[var];
        const long long newest = R->newest[h], m = R->now - d;
        if (newest < 0 || m <= 0) {
            a = R->init + h * lanes;
        } else if (m < newest) {
            a = R->data + (h * R->planes * S + rr_slot_of(R, h, (size_t)m)) * lanes;
        } else {
            rr_tap_add_SFX(lanes, rr_ring_tap(R, var, t, delay, d), w, Oi, x_now);
            return;
        }
    } else {
        rr_tap_add_SFX(lanes, rr_ring_tap(R, var, t, delay, d), w, Oi, x_now);
        return;
    }
    rr_axpy_SFX(lanes, Oi, w, a);
}
/* An evaluation at a step start: the terms in column order (term c of every row, then term
   c + 1: every row still sums its terms in order, and for a dense coupling one source's past
   is read by all targets in turn, as network_grid.c does), each term's target row QI, source
   slot QJ, weight QW, delayed variable QV, delay QD and whole steps WS stored in that order,
   so they stream. */
static inline __attribute__((always_inline)) void rr_ring_whole_SFX(size_t lanes, size_t nq,
        const rr_ring* restrict R, double t, RTYPE* restrict O, size_t os, const RTYPE* restrict SRC,
        const unsigned long long* restrict QI, const unsigned long long* restrict QJ,
        const double* restrict QW, const unsigned long long* restrict QV, const double* restrict QD,
        const long long* restrict WS) {
    const size_t S = (size_t)R->slots;
    const long long now = R->now;
    for (size_t q = 0; q < nq; q++) {
        /* The reads scatter over each source's past (and the ring outgrows the caches): ask for
           the values RR_AHEAD terms on now, so several reads wait on memory at once. */
        if (q + RR_AHEAD < nq) {
            const size_t p = q + RR_AHEAD;
            const long long dp = WS[p];
            const unsigned long long vp = QV[p];
            if (dp >= 0 && vp != ~0ULL) {
                const size_t hp = R->hist_of[vp];
                const long long np = R->newest[hp], mp = now - dp;
                if (np >= 0 && mp > 0 && mp < np) {
                    const char* x = (const char*)(R->data + (hp * R->planes * S + rr_slot_of(R, hp, (size_t)mp)) * lanes);
                    for (size_t b = 0; b < lanes * sizeof(double); b += 64) __builtin_prefetch(x + b);
                }
            }
        }
        rr_ring_term_SFX(lanes, R, t, O + (size_t)QI[q] * os, SRC + (size_t)QJ[q] * lanes, (RTYPE)QW[q], QV[q],
                         (double)(RTYPE)QD[q], WS[q]);
    }
}
/* The rows of a column of a history with points (X its values, I its initial values): a row
   whose delay is at least one whole step and whose step is before the newest point adds
   W[i] * (the value row of step now - K[i], or the initial values when that step is not
   after 0); every other row (a zero delay: the source now; a fraction; a read at or after
   the newest point) is the general term's, its index put in PEND for the caller, and the
   count returned. Each row takes one term of the column, so the deferred ones added after
   the rest give every row the same sum. The rows scatter over the source's past, and a
   block's ring outgrows L2 (at 64 lanes the loop waited on each row's first load): the row
   RR_AHEAD rows on is asked for now (a prefetch changes no value and never faults; for a
   row of the caller's its address is merely unused). Not below a chunk of lanes: a row of 8
   lanes is one cache line, and two threads' 8-lane blocks at N = 200 ran faster without it. */
static inline __attribute__((always_inline)) size_t rr_column_rows_body_SFX(size_t lanes, size_t n, RTYPE* restrict O,
        size_t os, const double* restrict X, const double* restrict I, long long back0, long long S,
        const long long* restrict K, const double* restrict W, long long now, long long newest,
        unsigned* restrict PEND) {
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (lanes >= RR_CHUNK && i + RR_AHEAD < n) {
            long long sp = back0 - K[i + RR_AHEAD];
            sp += sp < 0 ? S : 0;
            const char* x = (const char*)(X + (size_t)sp * lanes);
            for (size_t b = 0; b < lanes * sizeof(double); b += 64) __builtin_prefetch(x + b);
        }
        const long long k = K[i];
        if (k > 0 && now - k < newest) {
            long long s = back0 - k;
            s += s < 0 ? S : 0;
            rr_axpy_SFX(lanes, O + i * os, (RTYPE)W[i], now - k <= 0 ? I : X + (size_t)s * lanes);
        } else {
            PEND[np++] = (unsigned)i;
        }
    }
    return np;
}
/* A function of its own: inlined into the long rhs, the loop ran out of registers and
   reloaded the column's pointers and offsets every term (the delayed runs' hottest loop).
   Specialised for the block widths, as the rhs is, and for half a chunk: two threads split a
   16-point sweep into two blocks of 8 lanes, whose rows the generic loop ran lane by lane. */
static __attribute__((noinline)) size_t rr_column_rows_SFX(size_t lanes, size_t n, RTYPE* restrict O, size_t os,
        const double* restrict X, const double* restrict I, long long back0, long long S,
        const long long* restrict K, const double* restrict W, long long now, long long newest,
        unsigned* restrict PEND) {
    if (lanes == RR_CHUNK / 2)
        return rr_column_rows_body_SFX(RR_CHUNK / 2, n, O, os, X, I, back0, S, K, W, now, newest, PEND);
    if (lanes == RR_CHUNK) return rr_column_rows_body_SFX(RR_CHUNK, n, O, os, X, I, back0, S, K, W, now, newest, PEND);
    if (lanes == RR_BLOCK) return rr_column_rows_body_SFX(RR_BLOCK, n, O, os, X, I, back0, S, K, W, now, newest, PEND);
    return rr_column_rows_body_SFX(lanes, n, O, os, X, I, back0, S, K, W, now, newest, PEND);
}
/* rr_ring_whole_SFX for a coupling whose rows all read the same sources in the same order
   (an all-to-all edge list, a connectivity matrix): column c's terms are c * n + i for rows
   i = 0 .. n-1, and all its delayed terms read the variable CV[c] (~0: none does), so per
   column the history's row offsets are found once and per term only its whole steps and
   weight are loaded, as network_grid.c loads a delay and a weight. A term of at least one
   whole step between the first and the newest point reads its value row (the slot counted
   back from the newest point's), before the first point the initial values; every other
   term (zero or fractional delays, current values) is rr_ring_term_SFX's, so the sums are
   the same, term by term. */
static inline __attribute__((always_inline)) void rr_ring_columns_SFX(size_t lanes, size_t n, size_t ncols,
        const rr_ring* restrict R, double t, RTYPE* restrict O, size_t os, const RTYPE* restrict SRC,
        const unsigned long long* restrict QJ, const double* restrict QW, const unsigned long long* restrict QV,
        const double* restrict QD, const long long* restrict WS, const unsigned long long* restrict CV) {
    const long long S = (long long)R->slots, now = R->now;
    for (size_t c = 0; c < ncols; c++) {
        const size_t q0 = c * n;
        const unsigned long long var = CV[c];
        const size_t h = var == ~0ULL ? 0 : (size_t)R->hist_of[var];
        const long long newest = var == ~0ULL ? -1 : R->newest[h];
        if (newest < 0) {
            for (size_t i = 0; i < n; i++)
                rr_ring_term_SFX(lanes, R, t, O + i * os, SRC + (size_t)QJ[q0 + i] * lanes, (RTYPE)QW[q0 + i],
                                 QV[q0 + i], (double)(RTYPE)QD[q0 + i], WS[q0 + i]);
            continue;
        }
        const double* restrict X = R->data + h * R->planes * (size_t)S * lanes;
        const double* restrict I = R->init + h * lanes;
        /* step now - k is in slot ns - (newest - now + k), plus S when that is negative */
        const long long back0 = (long long)R->newest_slot[h] - (newest - now);
        const long long* restrict K = WS + q0;
        const double* restrict Wc = QW + q0;
        /* Rows in runs of RR_PENDING, so the deferred rows' indices fit a small array. */
        unsigned pend[RR_PENDING];
        for (size_t i0 = 0; i0 < n; i0 += RR_PENDING) {
            const size_t rows = n - i0 < RR_PENDING ? n - i0 : RR_PENDING;
            const size_t np = rr_column_rows_SFX(lanes, rows, O + i0 * os, os, X, I, back0, S, K + i0, Wc + i0,
                                                 now, newest, pend);
            for (size_t p = 0; p < np; p++) {
                const size_t i = i0 + pend[p];
                rr_ring_term_SFX(lanes, R, t, O + i * os, SRC + (size_t)QJ[q0 + i] * lanes, (RTYPE)Wc[i],
                                 QV[q0 + i], (double)(RTYPE)QD[q0 + i], K[i]);
            }
        }
    }
}
/* Rows of a column in groups: first every row's tap (no ring reads, so the group's reads are
   all known before the first one), then the lane loops, prefetching a few rows ahead: the
   reads scatter over the source's past, so they would otherwise wait on memory one by one. */
static inline __attribute__((always_inline)) void rr_ring_coupling_SFX(size_t lanes, size_t n, double t, const rr_ring* restrict R,
        const RTYPE* restrict E, size_t es, RTYPE* restrict O, size_t os, const RTYPE* restrict SRC,
        const unsigned long long* restrict ROWS, const unsigned long long* restrict CJ,
        const double* restrict CW, const unsigned long long* restrict DV, const double* restrict DD,
        size_t nq, const unsigned long long* restrict QI, const unsigned long long* restrict QJ,
        const double* restrict QW, const unsigned long long* restrict QV, const double* restrict QD,
        const long long* restrict WS, const unsigned long long* restrict CV) {
    size_t width = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t len = (size_t)(ROWS[i + 1] - ROWS[i]);
        if (len > width) width = len;
        for (size_t l = 0; l < lanes; l++) O[i * os + l] = E[i * es + l];
    }
    if (R->now >= 0) {
        if (CV) rr_ring_columns_SFX(lanes, n, width, R, t, O, os, SRC, QJ, QW, QV, QD, WS, CV);
        else rr_ring_whole_SFX(lanes, nq, R, t, O, os, SRC, QI, QJ, QW, QV, QD, WS);
        return;
    }
    rr_tap taps[RR_TAPS];
    size_t rows[RR_TAPS], terms[RR_TAPS];
    for (size_t c = 0; c < width; c++)
        for (size_t i0 = 0; i0 < n;) {
            size_t m = 0;
            for (; i0 < n && m < RR_TAPS; i0++) {
                const size_t k = (size_t)ROWS[i0] + c;
                if (k >= (size_t)ROWS[i0 + 1]) continue;
                taps[m] = rr_ring_tap(R, DV[k], t, (double)(RTYPE)DD[k], -1);
                rows[m] = i0;
                terms[m] = k;
                m++;
            }
            for (size_t q = 0; q < m; q++) {
                if (q + RR_AHEAD < m && taps[q + RR_AHEAD].kind >= 3) {
                    const rr_tap* f = &taps[q + RR_AHEAD];
                    const char* rows4[4] = {(const char*)f->a, (const char*)f->b, (const char*)f->m0, (const char*)f->m1};
                    for (int r = 0; r < (f->kind == 3 ? 4 : 1); r++)
                        for (size_t b = 0; b < lanes * sizeof(double); b += 64) __builtin_prefetch(rows4[r] + b);
                }
                const size_t k = terms[q];
                rr_tap_add_SFX(lanes, taps[q], (RTYPE)CW[k], O + rows[q] * os, SRC + (size_t)CJ[k] * lanes);
            }
        }
}
/* The general read of one term whose lanes read different delays, added to Oi: per chunk of
   lanes, first every lane's Hermite step and weights at once (vectorised: DelayRing::value's
   operations; its step is fixed by two comparisons alone, so the first guess may multiply by
   1/dt, corrected once each way and then checked), then lane by lane the four-term sum. A lane
   outside that case (a whole-step read at a step start, a read before the first or at or after
   the newest point, a guess off by more than a step) reads by rr_ring_lane. Not inlined: the
   term loop around it stays a short whole-step loop. */
static __attribute__((noinline)) void rr_lane_read_SFX(const rr_ring* restrict R, size_t h, double t,
        const double* restrict D, const long long* restrict K, size_t lanes, RTYPE w, RTYPE* restrict Oi) {
    const size_t L = (size_t)R->lanes, S = (size_t)R->slots;
    const long long newest = R->newest[h];
    const double* restrict X = R->data + h * R->planes * S * L;
    const double dt = R->dt, inv = 1.0 / dt;
    const double tn = newest >= 0 ? (double)(size_t)newest * dt : 0.0;
    const double last = newest >= 1 ? (double)(newest - 1) : -1.0;
    /* the slot of step lo is back0 + lo, plus S when that is negative */
    const double back0 = (double)R->newest_slot[h] - (double)newest;
    const long long at_step = R->now >= 0;
    for (size_t l0 = 0; l0 < lanes; l0 += RR_CHUNK) {
        const size_t m = lanes - l0 < RR_CHUNK ? lanes - l0 : RR_CHUNK;
        double w0[RR_CHUNK], w1[RR_CHUNK], w2[RR_CHUNK], w3[RR_CHUNK], sl[RR_CHUNK];
        long long general[RR_CHUNK];
        for (size_t l = 0; l < m; l++) {
            const double tq = t - D[l0 + l];
            double lo = floor(tq * inv);
            lo = lo > last ? last : lo;
            lo = lo < 0.0 ? 0.0 : lo;
            lo = (lo < last && (lo + 1.0) * dt <= tq) ? lo + 1.0 : lo;
            lo = (lo > 0.0 && lo * dt > tq) ? lo - 1.0 : lo;
            const long long hermite = (last >= 0.0) & (tq > 0.0) & (tq < tn) & !(at_step & (K[l0 + l] >= 0))
                                      & ((lo == last) | ((lo + 1.0) * dt > tq)) & ((lo == 0.0) | (lo * dt <= tq));
            const double t0 = lo * dt, t1 = (lo + 1.0) * dt, step = t1 - t0;
            const double s = (tq - t0) / step, s2 = s * s, s3 = s2 * s;
            w0[l] = 2.0 * s3 - 3.0 * s2 + 1.0;
            w1[l] = (s3 - 2.0 * s2 + s) * step;
            w2[l] = -2.0 * s3 + 3.0 * s2;
            w3[l] = (s3 - s2) * step;
            const double s0 = back0 + lo;
            sl[l] = s0 < 0.0 ? s0 + (double)S : s0;
            general[l] = !hermite;
        }
        for (size_t l = 0; l < m; l++) {
            const size_t c = l0 + l;
            double x;
            if (general[l]) {
                x = rr_ring_lane(R, h, c, t, D[c], K[c]);
            } else {
                const size_t s0 = (size_t)sl[l], s1 = s0 + 1 == S ? 0 : s0 + 1;
                x = w0[l] * X[s0 * L + c] + w1[l] * X[(S + s0) * L + c] + w2[l] * X[s1 * L + c]
                    + w3[l] * X[(2 * S + s0) * L + c];
            }
            Oi[c] = Oi[c] + w * (RTYPE)x;
        }
    }
}
/* A delayed coupling whose delays differ per lane (a swept conduction velocity), from the
   ring: the terms in column order as rr_ring_whole_SFX (term q is the ring's lane term
   first + q). At a step start, a term whose lanes all read whole steps strictly between the
   first and the newest point reads the value rows: one row when every lane's delay is the
   same number of steps, else each lane its own slot of its own row (the slots of one step,
   counted back from the newest point's without a division). Every other read (a fraction of a
   step, a stage between steps, the initial values, the newest point) is the general rule lane
   by lane, each lane with its own delay. */
static inline __attribute__((always_inline)) void rr_lane_coupling_SFX(size_t lanes, size_t n, double t,
        const rr_ring* restrict R, const RTYPE* restrict E, size_t es, RTYPE* restrict O, size_t os,
        const RTYPE* restrict SRC, size_t nq, const unsigned long long* restrict QI,
        const unsigned long long* restrict QJ, const double* restrict QW, const unsigned long long* restrict QV,
        size_t first) {
    for (size_t i = 0; i < n; i++)
        for (size_t l = 0; l < lanes; l++) O[i * os + l] = E[i * es + l];
    const size_t L = (size_t)R->lanes, S = (size_t)R->slots;
    const long long now = R->now;
    for (size_t q = 0; q < nq; q++) {
        /* As rr_ring_whole_SFX: the value row of a term RR_AHEAD on, when all its lanes read it. */
        if (now >= 0 && q + RR_AHEAD < nq) {
            const size_t p = q + RR_AHEAD;
            const unsigned long long vp = QV[p];
            const long long kp = R->lane_kmin[first + p];
            if (vp != ~0ULL && kp >= 0 && kp == R->lane_kmax[first + p]) {
                const size_t hp = R->hist_of[vp];
                const long long np = R->newest[hp], mp = now - kp;
                if (np >= 0 && mp > 0 && mp < np) {
                    const char* x = (const char*)(R->data + (hp * R->planes * S + rr_slot_of(R, hp, (size_t)mp)) * L);
                    for (size_t b = 0; b < L * sizeof(double); b += 64) __builtin_prefetch(x + b);
                }
            }
        }
        const RTYPE w = (RTYPE)QW[q];
        RTYPE* restrict Oi = O + (size_t)QI[q] * os;
        const unsigned long long var = QV[q];
        if (var == ~0ULL) {
            const RTYPE* restrict x = SRC + (size_t)QJ[q] * lanes;
            for (size_t l = 0; l < lanes; l++) Oi[l] = Oi[l] + w * x[l];
            continue;
        }
        const size_t h = R->hist_of[var], lt = first + q;
        const long long newest = R->newest[h], kmin = R->lane_kmin[lt], kmax = R->lane_kmax[lt];
        const long long* restrict K = R->lane_whole + lt * L;
        if (now >= 0 && kmin >= 0 && newest >= 0 && now - kmax > 0 && now - kmin < newest) {
            const double* restrict X = R->data + h * R->planes * S * L;
            if (kmin == kmax) {
                const double* restrict a = X + rr_slot_of(R, h, (size_t)(now - kmin)) * L;
                for (size_t l = 0; l < lanes; l++) Oi[l] = Oi[l] + w * (RTYPE)a[l];
            } else {
                /* slot of step now - k: newest_slot - (newest - now + k), within one turn */
                const long long base = (long long)R->newest_slot[h] - (newest - now);
                for (size_t l = 0; l < lanes; l++) {
                    long long s = base - K[l];
                    s += s < 0 ? (long long)S : 0;
                    Oi[l] = Oi[l] + w * (RTYPE)X[(size_t)s * L + l];
                }
            }
            continue;
        }
        rr_lane_read_SFX(R, h, t, R->lane_delay + lt * L, K, lanes, w, Oi);
    }
}
/* rr_delayed_SFX for delays per lane without a ring: term k's delay in lane l is
   DD[k] / P[VS[k]][l] (its length over the lane's velocity, divided in RTYPE as the written-out
   `length / velocity`), or DD[k] itself when VS[k] is ~0. */
static void rr_delayed_lane_SFX(size_t lanes, double t, void* ctx, const RTYPE* restrict P,
        const RTYPE* restrict E, RTYPE* restrict O, const RTYPE* restrict SRC,
        const unsigned long long* restrict CJ, const double* restrict CW, const unsigned long long* restrict DV,
        const double* restrict DD, const unsigned long long* restrict VS, size_t k0, size_t k1) {
    for (size_t l = 0; l < lanes; l++) {
        RTYPE acc = E[l];
        for (size_t k = k0; k < k1; k++) {
            RTYPE x;
            if (DV[k] == ~0ULL) {
                x = SRC[(size_t)CJ[k] * lanes + l];
            } else {
                const double d = VS[k] == ~0ULL ? (double)(RTYPE)DD[k]
                                                : (double)((RTYPE)DD[k] / P[(size_t)VS[k] * lanes + l]);
                x = (RTYPE)rr_past(ctx, (unsigned)DV[k], l, t, d);
            }
            acc = acc + (RTYPE)CW[k] * x;
        }
        O[l] = acc;
    }
}
"#;

/// Where a coupling's sums start: each target's external input (`U`), or zero (`Z`, a row of
/// zeros, for a scaled coupling whose sums are scaled afterwards).
pub(super) enum Start {
    External(crate::model::network::Local),
    Zero,
}

/// A delayed coupling's evaluation: from the ring buffer when the solver gave one (`R`),
/// else through the solver's `past` hook term by term.
#[allow(clippy::too_many_arguments)]
pub(super) fn delayed_coupling(
    s: &mut String,
    sfx: &str,
    cp: &crate::model::network::Coupling,
    start: &Start,
    tgt: crate::model::network::Local,
    src: &str,
    at: CouplingAt,
    delayed: Delayed,
) {
    let Delayed {
        vars: dv,
        secs: dd,
        columns: q,
        per_lane,
    } = delayed;
    let (e0, es, er) = match start {
        Start::External(ext) => (
            format!("U + (size_t){} * lanes", ext.base),
            format!("(size_t){} * lanes", ext.stride),
            format!("U + {}", row(ext.base, ext.stride)),
        ),
        Start::Zero => ("Z".to_string(), "0".to_string(), "Z".to_string()),
    };
    let CouplingAt {
        rows,
        sources: srcs,
        weights: ws,
        ..
    } = at;
    // The ring's entry point and the tail of its arguments (both read the terms in column
    // order), and for the hook path (no ring) the lane delays' parameters.
    let terms = format!(
        "(size_t){}, NI + {}, NI + {}, ND + {}, NI + {}",
        q.terms, q.rows, q.sources, q.weights, q.vars
    );
    let (ring_fn, ring_args, hook_fn, hook_params, hook_lane_delays) = match per_lane {
        Some(vs) => (
            "rr_lane_coupling",
            format!("{terms}, (size_t){}", q.whole),
            "rr_delayed_lane",
            "P, ",
            format!(", NI + {vs}"),
        ),
        None => (
            "rr_ring_coupling",
            format!(
                "NI + {rows}, NI + {srcs}, ND + {ws}, NI + {dv}, ND + {dd}, {terms}, ND + {qd}, R->whole + {whole}, {cv}",
                qd = q.delays,
                whole = q.whole,
                cv = q.column_vars.map_or("0".to_string(), |cv| format!("NI + {cv}")),
            ),
            "rr_delayed",
            "",
            String::new(),
        ),
    };
    let _ = writeln!(
        s,
        "if (R) {ring_fn}_{sfx}(lanes, (size_t){n}, t, R, {e0}, {es}, A + (size_t){ob} * lanes, (size_t){os} * lanes, {src}, {ring_args});\nelse for (size_t i = 0; i < (size_t){n}; i++)\n    {hook_fn}_{sfx}(lanes, t, ctx, {hook_params}{er}, A + {or}, {src}, NI + {srcs}, ND + {ws}, NI + {dv}, ND + {dd}{hook_lane_delays}, (size_t)NI[{rows} + i], (size_t)NI[{rows} + i + 1]);",
        n = cp.len(),
        ob = tgt.base,
        os = tgt.stride,
        or = row(tgt.base, tgt.stride),
    );
}

/// A coupling with a scale (a `connectivity:` block's global coupling, per lane or constant):
/// the weighted sums into the target rows from zero, by the same row routines, then
/// `target = external + scale · sum` — the unrolled `ext + s·(w₁x₁ + …)` bit for bit (a sum
/// from 0 adds its first term exactly). Delayed terms read the ring (or the solver's `past`)
/// as an unscaled delayed coupling does.
pub(super) fn scaled_coupling(layout: &Layout, cp: &Coupling, p: &Population, at: CouplingAt, ty: Ty) -> String {
    let sfx = match ty {
        Ty::F64 => "d",
        Ty::F32 => "f",
    };
    let t = ty.name();
    let (tgt, ext) = (p.locals[cp.target], p.locals[cp.external]);
    let (rows, srcs, ws) = (at.rows, at.sources, at.weights);
    let src = array(cp.source_kind);
    let scale = match cp.scale {
        Some(Scale::Param(v)) => format!("P[(size_t){} * lanes + l]", layout.slot[v.0 as usize]),
        Some(Scale::Const(x)) => format!("({t}){x:?}"),
        None => unreachable!("called for scaled couplings only"),
    };
    let sums = if let Some(d) = at.delays {
        let mut text = String::new();
        delayed_coupling(&mut text, sfx, cp, &Start::Zero, tgt, src, at, d);
        let mut indented = String::new();
        indent_by(&mut indented, &text, 1);
        indented
    } else if cp.dense {
        format!(
            "    rr_dense_{sfx}(lanes, (size_t){n}, Z, 0, A + (size_t){ob} * lanes, (size_t){os} * lanes, {src}, NI + {srcs}, (size_t)NI[{spacing}], ND + {ws}, (size_t){cols});
",
            spacing = at.spacing,
            n = cp.len(),
            ob = tgt.base,
            os = tgt.stride,
            cols = cp.columns()
        )
    } else {
        format!(
            "    for (size_t i = 0; i < (size_t){n}; i++)
        rr_csr_{sfx}(lanes, Z, A + {or}, {src}, NI + {srcs}, ND + {ws}, (size_t)NI[{rows} + i], (size_t)NI[{rows} + i + 1]);
",
            n = cp.len(),
            or = row(tgt.base, tgt.stride),
        )
    };
    format!(
        "{{
    {t} Z[lanes];
    for (size_t l = 0; l < lanes; l++) Z[l] = 0;
{sums}    for (size_t i = 0; i < (size_t){n}; i++) {{
        const {t}* restrict E = U + {er};
        {t}* restrict O = A + {or};
        for (size_t l = 0; l < lanes; l++) O[l] = E[l] + {scale} * O[l];
    }}
}}
",
        n = cp.len(),
        er = row(ext.base, ext.stride),
        or = row(tgt.base, tgt.stride),
    )
}
