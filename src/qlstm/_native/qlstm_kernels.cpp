// Native kernels of qlstm: the faithful QLSTM recurrence in the Heisenberg picture, forward and
// backward, for one CPU call each (see qlstm/models/_native_qlstm.py for the Python side and the
// reference it is tested against: qlstm/models/_fused.py and TransferRows in
// qlstm/circuit/heisenberg.py compute the same numbers in torch operations).
//
// Plain C ABI, no torch headers: the caller allocates every tensor (contiguous, on the CPU) and
// passes raw pointers. Compiled on first use by qlstm/_native/__init__.py.
//
// A VQC group (the four gate VQCs, or the two processing VQCs) is:
//   nq qubits, D = 4**nq Pauli coefficients, G weight copies, K observables, R = G*K rows,
//   nw weights per copy, M Rot gates with angle indices idx[3][M] (phi, theta, omega),
//   S plan steps, each (type, a, b): type 0 a signed permutation (perm a: src, inv, sign),
//   type 1 a one-qubit Bloch rotation on wire a by gate b; observables' rows obs[K][D].
// Its transfer table is the R x D rows matrix after the plan: row g*K + k holds the Pauli
// coefficients of U_g^dag Z_k U_g, so that <Z_k>(x) = features(x) . row.
//
// The recurrence (Chen, Yoo & Fang 2020), per step t, with v = [x_t, h]:
//   e = rows_gates . features(v)   (4H values: forget, input, candidate, output pre-activations)
//   c = sigmoid(f) c + sigmoid(i) tanh(g),  u = sigmoid(o) tanh(c)
//   p = rows_proc . features(u)    (2H values: h_t, then y_t)

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef int64_t i64;

// worth a parallel region: enough samples times features (a region costs a few microseconds)
static bool parallel_ok(i64 samples, i64 features) { return samples >= 2 && samples * features >= 4096; }

struct Group {
    i64 nq, D, G, K, R, nw, M, S;
    const i64* plan;   // [S][3]
    const i64* idx;    // [3][M]
    const void* obs;   // [K][D] scalar
    const i64* src;    // [P][D]
    const i64* inv;    // [P][D]
    const void* sign;  // [P][D] scalar
};

static i64 pow4(i64 n) { return i64(1) << (2 * n); }

static Group read_group(const i64* d, void** p) {
    Group g;
    g.nq = d[0]; g.G = d[1]; g.K = d[2]; g.nw = d[3]; g.M = d[4]; g.S = d[5];
    g.D = pow4(g.nq); g.R = g.G * g.K;
    g.plan = (const i64*)p[0]; g.idx = (const i64*)p[1]; g.obs = p[2];
    g.src = (const i64*)p[3]; g.inv = (const i64*)p[4]; g.sign = p[5];
    return g;
}

// workspace of one group: rots [G*M*9], history [S*R*D], rows [R*D]
static i64 group_ws(const Group& g) { return g.G * g.M * 9 + g.S * g.R * g.D + g.R * g.D; }

template <typename T>
static void zyz(T phi, T theta, T omega, T* r) {
    T c1 = std::cos(phi), s1 = std::sin(phi), c2 = std::cos(theta), s2 = std::sin(theta);
    T c3 = std::cos(omega), s3 = std::sin(omega);
    T c2c1 = c2 * c1, c2s1 = c2 * s1;
    r[0] = c3 * c2c1 - s3 * s1; r[1] = -c3 * c2s1 - s3 * c1; r[2] = c3 * s2;
    r[3] = s3 * c2c1 + c3 * s1; r[4] = c3 * c1 - s3 * c2s1; r[5] = s3 * s2;
    r[6] = -s2 * c1;            r[7] = s2 * s1;              r[8] = c2;
}

// gradient of the three angles from that of R (gr [9])
template <typename T>
static void zyz_back(T phi, T theta, T omega, const T* gr, T* ga) {
    T c1 = std::cos(phi), s1 = std::sin(phi), c2 = std::cos(theta), s2 = std::sin(theta);
    T c3 = std::cos(omega), s3 = std::sin(omega);
    const T dphi[9] = {-c3 * c2 * s1 - s3 * c1, -c3 * c2 * c1 + s3 * s1, 0,
                       -s3 * c2 * s1 + c3 * c1, -c3 * s1 - s3 * c2 * c1, 0,
                       s2 * s1, s2 * c1, 0};
    const T dtheta[9] = {-c3 * s2 * c1, c3 * s2 * s1, c3 * c2,
                         -s3 * s2 * c1, s3 * s2 * s1, s3 * c2,
                         -c2 * c1, c2 * s1, -s2};
    const T domega[9] = {-s3 * c2 * c1 - c3 * s1, s3 * c2 * s1 - c3 * c1, -s3 * s2,
                         c3 * c2 * c1 - s3 * s1, -s3 * c1 - c3 * c2 * s1, c3 * s2,
                         0, 0, 0};
    T a = 0, b = 0, c = 0;
    for (int i = 0; i < 9; ++i) { a += gr[i] * dphi[i]; b += gr[i] * dtheta[i]; c += gr[i] * domega[i]; }
    ga[0] = a; ga[1] = b; ga[2] = c;
}

// One copy c of a group: its K rows after the plan, from the weights w [G][nw]; fills its share of
// ws (rots, history, rows; the copies' shares are disjoint, so copies run in parallel).
template <typename T>
static void table_forward(const Group& g, const T* w, T* ws, i64 c) {
    T* rots = ws;
    T* hist = rots + g.G * g.M * 9;
    T* rows = hist + g.S * g.R * g.D;
    for (i64 m = 0; m < g.M; ++m)
        zyz<T>(w[c * g.nw + g.idx[m]], w[c * g.nw + g.idx[g.M + m]], w[c * g.nw + g.idx[2 * g.M + m]],
               rots + (c * g.M + m) * 9);
    const T* sign = (const T*)g.sign;
    const i64 r0 = c * g.K, r1 = r0 + g.K;
    std::memcpy(rows + r0 * g.D, g.obs, sizeof(T) * g.K * g.D);
    for (i64 s = 0; s < g.S; ++s) {
        T* before = hist + s * g.R * g.D;
        std::memcpy(before + r0 * g.D, rows + r0 * g.D, sizeof(T) * g.K * g.D);
        const i64 type = g.plan[3 * s], a = g.plan[3 * s + 1], b = g.plan[3 * s + 2];
        if (type == 0) {
            const i64* src = g.src + a * g.D;
            const T* sg = sign + a * g.D;
            for (i64 r = r0; r < r1; ++r) {
                const T* in = before + r * g.D;
                T* out = rows + r * g.D;
                for (i64 i = 0; i < g.D; ++i) out[i] = in[src[i]] * sg[i];
            }
            continue;
        }
        const T* R3 = rots + (c * g.M + b) * 9;
        const T r00 = R3[0], r01 = R3[1], r02 = R3[2], r10 = R3[3], r11 = R3[4], r12 = R3[5];
        const T r20 = R3[6], r21 = R3[7], r22 = R3[8];
        const i64 st = pow4(g.nq - 1 - a), blocks = (r1 - r0) * pow4(a);
        const T* x = before + r0 * g.D;
        T* y = rows + r0 * g.D;
        for (i64 hb = 0; hb < blocks; ++hb, x += 4 * st, y += 4 * st) {
#pragma omp simd
            for (i64 lo = 0; lo < st; ++lo) {
                const T x1 = x[st + lo], x2 = x[2 * st + lo], x3 = x[3 * st + lo];
                y[lo] = x[lo];  // the identity component
                y[st + lo] = x1 * r00 + x2 * r10 + x3 * r20;
                y[2 * st + lo] = x1 * r01 + x2 * r11 + x3 * r21;
                y[3 * st + lo] = x1 * r02 + x2 * r12 + x3 * r22;
            }
        }
    }
}

// One copy c: the gradient of its weights (gw [G][nw], its row written) from that of its rows
// (grows [R][D], its rows overwritten)
template <typename T>
static void table_backward(const Group& g, const T* w, const T* ws, T* grows, T* gw, i64 c) {
    const T* rots = ws;
    const T* hist = rots + g.G * g.M * 9;
    const T* sign = (const T*)g.sign;
    std::vector<T> grot(g.M * 9, T(0));
    std::vector<T> tmp(g.D);
    const i64 r0 = c * g.K, r1 = r0 + g.K;
    for (i64 s = g.S - 1; s >= 0; --s) {
        const T* before = hist + s * g.R * g.D;
        const i64 type = g.plan[3 * s], a = g.plan[3 * s + 1], b = g.plan[3 * s + 2];
        if (type == 0) {
            const i64* inv = g.inv + a * g.D;
            const T* sg = sign + a * g.D;
            for (i64 r = r0; r < r1; ++r) {
                T* gr = grows + r * g.D;
                for (i64 i = 0; i < g.D; ++i) tmp[i] = gr[inv[i]] * sg[inv[i]];
                std::memcpy(gr, tmp.data(), sizeof(T) * g.D);
            }
            continue;
        }
        const T* R3 = rots + (c * g.M + b) * 9;
        const T r00 = R3[0], r01 = R3[1], r02 = R3[2], r10 = R3[3], r11 = R3[4], r12 = R3[5];
        const T r20 = R3[6], r21 = R3[7], r22 = R3[8];
        T a00 = 0, a01 = 0, a02 = 0, a10 = 0, a11 = 0, a12 = 0, a20 = 0, a21 = 0, a22 = 0;
        const i64 st = pow4(g.nq - 1 - a), blocks = (r1 - r0) * pow4(a);
        const T* x = before + r0 * g.D;
        T* gy = grows + r0 * g.D;  // in place: the gradient of the output, then of the input
        // dL/dR_ij = sum x_(i+1) g_(j+1); dL/dx_(i+1) = sum_j R_ij g_(j+1); the identity part passes
#define QLSTM_ROT_BACK_BODY                                                              \
    const T x1 = x[st + lo], x2 = x[2 * st + lo], x3 = x[3 * st + lo];                   \
    const T g1 = gy[st + lo], g2 = gy[2 * st + lo], g3 = gy[3 * st + lo];                \
    a00 += x1 * g1; a01 += x1 * g2; a02 += x1 * g3;                                      \
    a10 += x2 * g1; a11 += x2 * g2; a12 += x2 * g3;                                      \
    a20 += x3 * g1; a21 += x3 * g2; a22 += x3 * g3;                                      \
    gy[st + lo] = r00 * g1 + r01 * g2 + r02 * g3;                                        \
    gy[2 * st + lo] = r10 * g1 + r11 * g2 + r12 * g3;                                    \
    gy[3 * st + lo] = r20 * g1 + r21 * g2 + r22 * g3;
        if (st >= 16) {
            for (i64 hb = 0; hb < blocks; ++hb, x += 4 * st, gy += 4 * st) {
#pragma omp simd reduction(+ : a00, a01, a02, a10, a11, a12, a20, a21, a22)
                for (i64 lo = 0; lo < st; ++lo) { QLSTM_ROT_BACK_BODY }
            }
        } else {  // short strides: scalar sums over all blocks (a vector reduction per block costs more)
            for (i64 hb = 0; hb < blocks; ++hb, x += 4 * st, gy += 4 * st)
                for (i64 lo = 0; lo < st; ++lo) { QLSTM_ROT_BACK_BODY }
        }
#undef QLSTM_ROT_BACK_BODY
        T* G3 = grot.data() + b * 9;
        G3[0] += a00; G3[1] += a01; G3[2] += a02; G3[3] += a10; G3[4] += a11; G3[5] += a12;
        G3[6] += a20; G3[7] += a21; G3[8] += a22;
    }
    for (i64 i = 0; i < g.nw; ++i) gw[c * g.nw + i] = 0;
    for (i64 m = 0; m < g.M; ++m) {
        const i64 i0 = g.idx[m], i1 = g.idx[g.M + m], i2 = g.idx[2 * g.M + m];
        T ga[3];
        zyz_back<T>(w[c * g.nw + i0], w[c * g.nw + i1], w[c * g.nw + i2], grot.data() + m * 9, ga);
        gw[c * g.nw + i0] += ga[0]; gw[c * g.nw + i1] += ga[1]; gw[c * g.nw + i2] += ga[2];
    }
}

// Chen encoding of one value: the wire's Pauli 4-vector (1, <X>, <Y>, <Z>)
template <typename T>
static inline void chen_q(T v, T* q) {
    const T v2 = v * v, a = T(1) / std::sqrt(1 + v2), ab = a / std::sqrt(1 + v2 * v2);
    q[0] = 1; q[1] = ab; q[2] = ab * v2; q[3] = -a * v;
}

template <typename T>
static inline T chen_q_back(T v, const T* gq) {
    const T v2 = v * v, a = T(1) / std::sqrt(1 + v2), b = T(1) / std::sqrt(1 + v2 * v2), ab = a * b;
    const T dab = -ab * v * (a * a + 2 * v2 * b * b);
    return gq[1] * dab + gq[2] * (dab * v2 + 2 * v * ab) - gq[3] * (a * a * a);
}

// features (x) (1, r_w) [4**n] of values v [n], wire 0 most significant
template <typename T>
static void features(const T* v, i64 n, T* f) {
    T q[4];
    f[0] = 1;
    i64 len = 1;
    for (i64 w = 0; w < n; ++w) {
        chen_q<T>(v[w], q);
        for (i64 i = len - 1; i >= 0; --i) {
            const T fi = f[i];
            for (int d = 3; d >= 0; --d) f[4 * i + d] = fi * q[d];
        }
        len *= 4;
    }
}

// gradient of v [n] from that of the features gf [4**n]; scratch: 2 * 4**n + 4 n values.
// Contracts gf wire by wire from the most significant: A_0 = gf, A_{w+1} = sum_d q_w[d] A_w[d, :],
// and dL/dq_w[d] = A_w[d, :] . (q_{w+1} (x) ... (x) q_{n-1}).
template <typename T>
static void features_back(const T* v, i64 n, const T* gf, T* gv, T* scratch) {
    T* qs = scratch;         // [n][4]
    T* suf = qs + 4 * n;     // the suffix products, wire w's at suf + off[w] (4**(n-1-w) values)
    T* acc = suf + pow4(n);  // A_w, 4**(n-w) values (A_0 is gf itself)
    for (i64 w = 0; w < n; ++w) chen_q<T>(v[w], qs + 4 * w);
    i64 off[32];
    off[n - 1] = 0;
    suf[0] = 1;
    for (i64 w = n - 2; w >= 0; --w) {  // suffix of wire w = q_{w+1} (x) suffix of wire w+1
        const i64 len = pow4(n - 2 - w), o = off[w + 1] + len;
        off[w] = o;
        for (int d = 0; d < 4; ++d)
            for (i64 lo = 0; lo < len; ++lo) suf[o + d * len + lo] = qs[4 * (w + 1) + d] * suf[off[w + 1] + lo];
    }
    const T* a = gf;
    for (i64 w = 0; w < n; ++w) {
        const i64 len = pow4(n - 1 - w);
        const T* sw = suf + off[w];
        const T* q = qs + 4 * w;
        T gq[4];
        for (int d = 0; d < 4; ++d) {
            const T* row = a + d * len;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (i64 lo = 0; lo < len; ++lo) s += row[lo] * sw[lo];
            gq[d] = s;
        }
        gv[w] = chen_q_back<T>(v[w], gq);
        if (w + 1 < n) {
#pragma omp simd
            for (i64 lo = 0; lo < len; ++lo) acc[lo] = q[0] * a[lo] + q[1] * a[len + lo] + q[2] * a[2 * len + lo] + q[3] * a[3 * len + lo];
            a = acc;
            acc = (acc == suf + pow4(n)) ? acc + len : suf + pow4(n);  // ping-pong halves
        }
    }
}

// out[j] = f . rows[j] for j < nr (rows [nr][D]), four rows at a time
template <typename T>
static void dots(const T* f, const T* rows, i64 nr, i64 D, T* out) {
    i64 j = 0;
    for (; j + 4 <= nr; j += 4) {
        const T *r0 = rows + j * D, *r1 = r0 + D, *r2 = r1 + D, *r3 = r2 + D;
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (i64 a = 0; a < D; ++a) {
            const T x = f[a];
            s0 += x * r0[a]; s1 += x * r1[a]; s2 += x * r2[a]; s3 += x * r3[a];
        }
        out[j] = s0; out[j + 1] = s1; out[j + 2] = s2; out[j + 3] = s3;
    }
    for (; j < nr; ++j) {
        const T* r0 = rows + j * D;
        T s0 = 0;
#pragma omp simd reduction(+ : s0)
        for (i64 a = 0; a < D; ++a) s0 += f[a] * r0[a];
        out[j] = s0;
    }
}

// gf[a] = sum_j ge[j] rows[j][a]
template <typename T>
static void combine(const T* ge, const T* rows, i64 nr, i64 D, T* gf) {
    for (i64 a = 0; a < D; ++a) gf[a] = 0;
    for (i64 j = 0; j < nr; ++j) {  // row by row: contiguous, vectorised
        const T e = ge[j];
        const T* r = rows + j * D;
#pragma omp simd
        for (i64 a = 0; a < D; ++a) gf[a] += e * r[a];
    }
}

template <typename T>
static inline void axpy(T s, const T* x, T* y, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; ++i) y[i] += s * x[i];
}

template <typename T>
static inline T sigmoid(T z) { return T(1) / (T(1) + std::exp(-z)); }

struct Dims {
    i64 B, T, I, H, n, Dg, Dp, b0, b1;
    Group gg, gp;
    i64 off_gp, off_steps, per_step;
};

// d: B, T, I, H, (nq, G, K, nw, M, S) of the gate group and of the processing group, then the
// batch slice [b0, b1) a recurrence call works on; consts: the 6 + 6 group constants
static Dims read_dims(const i64* d, void** consts) {
    Dims m;
    m.B = d[0]; m.T = d[1]; m.I = d[2]; m.H = d[3];
    m.gg = read_group(d + 4, consts);
    m.gp = read_group(d + 10, consts + 6);
    m.b0 = d[16]; m.b1 = d[17];
    m.n = m.I + m.H; m.Dg = pow4(m.n); m.Dp = pow4(m.H);
    m.off_gp = group_ws(m.gg);
    m.off_steps = m.off_gp + group_ws(m.gp);
    // per step: v [B n], cell (sf si so tg cprev tc) [6 B H], u [B H]; the features are recomputed
    m.per_step = m.B * m.n + 7 * m.B * m.H;
    return m;
}

template <typename T>
static const T* rows_of(const Group& g, const T* ws) { return ws + g.G * g.M * 9 + g.S * g.R * g.D; }

template <typename T>
static bool finite(const T* a, i64 n) {
    for (i64 i = 0; i < n; ++i)
        if (!std::isfinite(a[i])) return false;
    return true;
}

// p: consts (12), w_gates, w_proc, workspace: every copy of both groups, in parallel
template <typename T>
static int tables(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    T* ws = (T*)p[14];
    const i64 tasks = m.gg.G + m.gp.G;
#pragma omp parallel for schedule(static) if (m.gg.R * m.Dg >= 1024)
    for (i64 k = 0; k < tasks; ++k) {
        if (k < m.gg.G) table_forward<T>(m.gg, (const T*)p[12], ws, k);
        else table_forward<T>(m.gp, (const T*)p[13], ws + m.off_gp, k - m.gg.G);
    }
    return 0;
}

// p: consts (12), x, h0, c0, out, h_T, c_T, workspace (tables filled); samples b0..b1-1.
// Returns 1, 2, 3 where x, h0, c0 (of the slice) hold a NaN or an infinity, before computing.
template <typename T>
static int forward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *x = (const T*)p[12], *h0 = (const T*)p[13], *c0 = (const T*)p[14];
    T *out = (T*)p[15], *hT = (T*)p[16], *cT = (T*)p[17], *ws = (T*)p[18];
    const i64 B = m.B, H = m.H, I = m.I, n = m.n, b0 = m.b0, b1 = m.b1;
    if (!finite(x + b0 * m.T * I, (b1 - b0) * m.T * I)) return 1;
    if (!finite(h0 + b0 * H, (b1 - b0) * H)) return 2;
    if (!finite(c0 + b0 * H, (b1 - b0) * H)) return 3;
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
#pragma omp parallel if (parallel_ok(b1 - b0, m.Dg))
    {
    std::vector<T> e(4 * H), pr(2 * H), f(m.Dg > m.Dp ? m.Dg : m.Dp);
#pragma omp for schedule(static)
    for (i64 b = b0; b < b1; ++b) {
        T* h = hT + b * H;
        T* c = cT + b * H;
        std::memcpy(h, h0 + b * H, sizeof(T) * H);
        std::memcpy(c, c0 + b * H, sizeof(T) * H);
        for (i64 t = 0; t < m.T; ++t) {
            T* st = ws + m.off_steps + t * m.per_step;
            T *v = st + b * n, *cell = st + B * n, *u = cell + 6 * B * H;
            T *sf = cell, *si = cell + B * H, *so = cell + 2 * B * H, *tg = cell + 3 * B * H;
            T *cp = cell + 4 * B * H, *tc = cell + 5 * B * H;
            for (i64 i = 0; i < I; ++i) v[i] = x[(b * m.T + t) * I + i];
            for (i64 k = 0; k < H; ++k) v[I + k] = h[k];
            features<T>(v, n, f.data());
            dots<T>(f.data(), rows_g, 4 * H, m.Dg, e.data());
            for (i64 k = 0; k < H; ++k) {
                const i64 q = b * H + k;
                const T f_ = sigmoid<T>(e[k]), i_ = sigmoid<T>(e[H + k]), g_ = std::tanh(e[2 * H + k]);
                const T o_ = sigmoid<T>(e[3 * H + k]);
                sf[q] = f_; si[q] = i_; tg[q] = g_; so[q] = o_; cp[q] = c[k];
                c[k] = f_ * c[k] + i_ * g_;
                tc[q] = std::tanh(c[k]);
                u[q] = o_ * tc[q];
            }
            features<T>(u + b * H, H, f.data());
            dots<T>(f.data(), rows_p, 2 * H, m.Dp, pr.data());
            for (i64 k = 0; k < H; ++k) {
                h[k] = pr[k];
                out[(b * m.T + t) * H + k] = pr[H + k];
            }
        }
    }
    }
    return 0;
}

// p: consts (12), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, grows_gates, grows_proc; samples
// b0..b1-1; the rows' gradients of the slice are written (not accumulated) to grows_*
template <typename T>
static int backward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *ws = (const T*)p[12], *g_out = (const T*)p[13], *g_h = (const T*)p[14], *g_c = (const T*)p[15];
    T *gx = (T*)p[16], *gh0 = (T*)p[17], *gc0 = (T*)p[18], *grows_g = (T*)p[19], *grows_p = (T*)p[20];
    const i64 B = m.B, H = m.H, I = m.I, n = m.n;
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
    const i64 Dmax = m.Dg > m.Dp ? m.Dg : m.Dp;
    const i64 ng = m.gg.R * m.Dg, np_ = m.gp.R * m.Dp;
    std::memset(grows_g, 0, sizeof(T) * ng);
    std::memset(grows_p, 0, sizeof(T) * np_);
#pragma omp parallel if (parallel_ok(m.b1 - m.b0, m.Dg))
    {
    std::vector<T> gp(2 * H), ge(4 * H), f(Dmax), gf(Dmax), gv(n), gu(H), scratch(2 * Dmax + 4 * n);
    std::vector<T> mine_g(ng, T(0)), mine_p(np_, T(0));  // this thread's share of the rows' gradients
    T* grows_g_t = mine_g.data();
    T* grows_p_t = mine_p.data();
#pragma omp for schedule(static)
    for (i64 b = m.b0; b < m.b1; ++b) {
        T* gh = gh0 + b * H;
        T* gc = gc0 + b * H;
        std::memcpy(gh, g_h + b * H, sizeof(T) * H);
        std::memcpy(gc, g_c + b * H, sizeof(T) * H);
        for (i64 t = m.T - 1; t >= 0; --t) {
            const T* st = ws + m.off_steps + t * m.per_step;
            const T *v = st + b * n, *cell = st + B * n, *u = cell + 6 * B * H;
            const T *sf = cell, *si = cell + B * H, *so = cell + 2 * B * H, *tg = cell + 3 * B * H;
            const T *cp = cell + 4 * B * H, *tc = cell + 5 * B * H;
            for (i64 k = 0; k < H; ++k) { gp[k] = gh[k]; gp[H + k] = g_out[(b * m.T + t) * H + k]; }
            features<T>(u + b * H, H, f.data());
            for (i64 j = 0; j < 2 * H; ++j) axpy<T>(gp[j], f.data(), grows_p_t + j * m.Dp, m.Dp);
            combine<T>(gp.data(), rows_p, 2 * H, m.Dp, gf.data());
            features_back<T>(u + b * H, H, gf.data(), gu.data(), scratch.data());
            for (i64 k = 0; k < H; ++k) {
                const i64 q = b * H + k;
                const T gcc = gc[k] + gu[k] * so[q] * (1 - tc[q] * tc[q]);
                ge[k] = gcc * cp[q] * sf[q] * (1 - sf[q]);
                ge[H + k] = gcc * tg[q] * si[q] * (1 - si[q]);
                ge[2 * H + k] = gcc * si[q] * (1 - tg[q] * tg[q]);
                ge[3 * H + k] = gu[k] * tc[q] * so[q] * (1 - so[q]);
                gc[k] = gcc * sf[q];
            }
            features<T>(v, n, f.data());
            for (i64 j = 0; j < 4 * H; ++j) axpy<T>(ge[j], f.data(), grows_g_t + j * m.Dg, m.Dg);
            combine<T>(ge.data(), rows_g, 4 * H, m.Dg, gf.data());
            features_back<T>(v, n, gf.data(), gv.data(), scratch.data());
            for (i64 i = 0; i < I; ++i) gx[(b * m.T + t) * I + i] = gv[i];
            for (i64 k = 0; k < H; ++k) gh[k] = gv[I + k];
        }
    }
#pragma omp critical
    {
        for (i64 i = 0; i < ng; ++i) grows_g[i] += grows_g_t[i];
        for (i64 i = 0; i < np_; ++i) grows_p[i] += grows_p_t[i];
    }
    }
    return 0;
}

// p: consts (12), workspace, w_gates, w_proc, g_w_gates, g_w_proc (written), then d[18] pairs
// (grows_gates, grows_proc) of the slices, summed here (their storage is reused)
template <typename T>
static int tables_backward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *ws = (const T*)p[12], *wg = (const T*)p[13], *wp = (const T*)p[14];
    T *gwg = (T*)p[15], *gwp = (T*)p[16];
    const i64 slices = d[18];
    T* grows_g = (T*)p[17];
    T* grows_p = (T*)p[18];
    for (i64 k = 1; k < slices; ++k) {
        const T *ag = (const T*)p[17 + 2 * k], *ap = (const T*)p[18 + 2 * k];
        for (i64 i = 0; i < m.gg.R * m.Dg; ++i) grows_g[i] += ag[i];
        for (i64 i = 0; i < m.gp.R * m.Dp; ++i) grows_p[i] += ap[i];
    }
    const i64 tasks = m.gg.G + m.gp.G;
#pragma omp parallel for schedule(static) if (m.gg.R * m.Dg >= 1024)
    for (i64 k = 0; k < tasks; ++k) {
        if (k < m.gg.G) table_backward<T>(m.gg, wg, ws, grows_g, gwg, k);
        else table_backward<T>(m.gp, wp, ws + m.off_gp, grows_p, gwp, k - m.gg.G);
    }
    return 0;
}

// the whole forward: p = consts (12), x, h0, c0, out, h_T, c_T, workspace, w_gates, w_proc
template <typename T>
static int step_forward(const i64* d, void** p) {
    void* tp[15];
    for (int k = 0; k < 12; ++k) tp[k] = p[k];
    tp[12] = p[19]; tp[13] = p[20]; tp[14] = p[18];
    tables<T>(d, tp);
    return forward<T>(d, p);
}

// the whole backward: p = consts (12), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, grows_gates,
// grows_proc, w_gates, w_proc, g_w_gates, g_w_proc
template <typename T>
static int step_backward(const i64* d, void** p) {
    backward<T>(d, p);
    void* tp[19];
    for (int k = 0; k < 12; ++k) tp[k] = p[k];
    tp[12] = p[12]; tp[13] = p[21]; tp[14] = p[22]; tp[15] = p[23]; tp[16] = p[24]; tp[17] = p[19]; tp[18] = p[20];
    return tables_backward<T>(d, tp);
}

}  // namespace

extern "C" {

int64_t qlstm_native_version() { return 3; }

int64_t qlstm_ws_size(const int64_t* d) {
    void* none[12] = {nullptr};
    Dims m = read_dims(d, none);
    return m.off_steps + m.T * m.per_step;
}

int qlstm_step_forward_f32(const int64_t* d, void** p) { return step_forward<float>(d, p); }
int qlstm_step_forward_f64(const int64_t* d, void** p) { return step_forward<double>(d, p); }
int qlstm_step_backward_f32(const int64_t* d, void** p) { return step_backward<float>(d, p); }
int qlstm_step_backward_f64(const int64_t* d, void** p) { return step_backward<double>(d, p); }
}
