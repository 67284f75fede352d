// Native kernels of qlstm: the faithful QLSTM recurrence, forward and backward, one CPU call each,
// in two forms: the Heisenberg picture (transfer tables, below) and the layered statevector (further
// down). See qlstm/models/_native_qlstm.py for the Python side and the references it is tested
// against (qlstm/models/_fused.py, _fused_general.py and TransferRows in qlstm/circuit/heisenberg.py
// compute the same numbers in torch operations).
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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef int64_t i64;

// Lane vectors: W values of T as one vector value (GCC/Clang vector extensions; unaligned, so they
// may point anywhere into a buffer), for the loops over lanes whose accumulators must stay in
// registers: written with plain arrays and `omp simd`, the compilers keep them in memory
#define QLSTM_LANE_VECTOR(V, T, W) typedef T V __attribute__((vector_size((W) * sizeof(T)), aligned(sizeof(T))))

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

// the batch padded to whole lane groups of W samples (the per-step values are kept per group)
static i64 padded(i64 B, i64 W) { return W > 1 ? (B + W - 1) / W * W : B; }

static Group read_group(const i64* d, void** p) {
    Group g;
    g.nq = d[0]; g.G = d[1]; g.K = d[2]; g.nw = d[3]; g.M = d[4]; g.S = d[5];
    g.D = pow4(g.nq); g.R = g.G * g.K;
    g.plan = (const i64*)p[0]; g.idx = (const i64*)p[1]; g.obs = p[2];
    g.src = (const i64*)p[3]; g.inv = (const i64*)p[4]; g.sign = p[5];
    return g;
}

// The table build keeps a group's G*K <= TL rows as the lanes of [D][TL] arrays (the lanes past
// G*K zero), so that every plan step is one vector operation over the rows whatever its wire's
// stride. Workspace of one group: rots [G*M*9], their angles' cosines and sines [G*M*6], rows
// [R*D], the rows in lanes [D*TL] (where the backward starts; the steps' inputs are un-computed
// from there, not kept)
static const i64 TL = 16;
static i64 group_ws(const Group& g) { return g.G * g.M * 15 + g.R * g.D + g.D * TL; }

// the Bloch rotation of Rot(phi, theta, omega) from cs = (cos phi, sin phi, cos theta, sin theta,
// cos omega, sin omega)
template <typename T>
static void zyz(const T* cs, T* r) {
    const T c1 = cs[0], s1 = cs[1], c2 = cs[2], s2 = cs[3], c3 = cs[4], s3 = cs[5];
    T c2c1 = c2 * c1, c2s1 = c2 * s1;
    r[0] = c3 * c2c1 - s3 * s1; r[1] = -c3 * c2s1 - s3 * c1; r[2] = c3 * s2;
    r[3] = s3 * c2c1 + c3 * s1; r[4] = c3 * c1 - s3 * c2s1; r[5] = s3 * s2;
    r[6] = -s2 * c1;            r[7] = s2 * s1;              r[8] = c2;
}

// gradient of the three angles from that of R (gr [9])
template <typename T>
static void zyz_back(const T* cs, const T* gr, T* ga) {
    const T c1 = cs[0], s1 = cs[1], c2 = cs[2], s2 = cs[3], c3 = cs[4], s3 = cs[5];
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

// the rotation of gate b in every lane (lane r < R: copy r / K; zero past R): rl [9][TL]
template <typename T>
static void lane_rotations(const Group& g, const T* rots, i64 b, T* rl) {
    std::fill(rl, rl + 9 * TL, T(0));
    for (i64 c = 0; c < g.G; ++c) {
        const T* R3 = rots + (c * g.M + b) * 9;
        for (int e = 0; e < 9; ++e)
            for (i64 k = 0; k < g.K; ++k) rl[e * TL + c * g.K + k] = R3[e];
    }
}

// All copies of a group at once: the rows after the plan, from the weights w [G][nw], the rows in
// lanes; fills the group's ws (rots, trig, rows [R][D], the rows in lanes [D][TL]). No step's input
// is kept: every step is invertible (a signed permutation, a rotation), and the backward
// un-computes them from the rows.
template <typename T>
static void table_forward(const Group& g, const T* w, T* ws) {
    const i64 R = TL, D = g.D, M = g.M;
    T* rots = ws;
    T* trig = rots + g.G * M * 9;
    T* rows = trig + g.G * M * 6;  // [g.R][D]
    for (i64 c = 0; c < g.G; ++c)
        for (i64 m = 0; m < M; ++m) {
            T* cs = trig + (c * M + m) * 6;
            for (int e = 0; e < 3; ++e) {
                const T angle = w[c * g.nw + g.idx[e * M + m]];
                cs[2 * e] = std::cos(angle); cs[2 * e + 1] = std::sin(angle);
            }
            zyz<T>(cs, rots + (c * M + m) * 9);
        }
    std::vector<T> buf(2 * D * R, T(0)), rl(9 * R);
    T *x = buf.data(), *y = x + D * R;  // ping-pong, within the first-level cache
    const T* obs = (const T*)g.obs;
    for (i64 c = 0; c < g.G; ++c)
        for (i64 k = 0; k < g.K; ++k)
            for (i64 i = 0; i < D; ++i) x[i * R + c * g.K + k] = obs[k * D + i];
    const T* sign = (const T*)g.sign;
    QLSTM_LANE_VECTOR(V, T, TL);  // the rows as one vector value
    for (i64 s = 0; s < g.S; ++s, std::swap(x, y)) {
        const i64 type = g.plan[3 * s], a = g.plan[3 * s + 1], b = g.plan[3 * s + 2];
        const V* X = (const V*)x;
        V* Y = (V*)y;
        if (type == 0) {
            const i64* src = g.src + a * D;
            const T* sg = sign + a * D;
            for (i64 i = 0; i < D; ++i) Y[i] = X[src[i]] * sg[i];
            continue;
        }
        lane_rotations<T>(g, rots, b, rl.data());
        const V* q = (const V*)rl.data();
        const V q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3], q4 = q[4], q5 = q[5], q6 = q[6], q7 = q[7], q8 = q[8];
        const i64 st = pow4(g.nq - 1 - a), blocks = pow4(a);
        for (i64 hb = 0; hb < blocks; ++hb)
            for (i64 lo = 0; lo < st; ++lo) {
                const i64 i0 = hb * 4 * st + lo, i1 = i0 + st, i2 = i1 + st, i3 = i2 + st;
                const V x1 = X[i1], x2 = X[i2], x3 = X[i3];
                Y[i0] = X[i0];  // the identity component
                Y[i1] = x1 * q0 + x2 * q3 + x3 * q6;
                Y[i2] = x1 * q1 + x2 * q4 + x3 * q7;
                Y[i3] = x1 * q2 + x2 * q5 + x3 * q8;
            }
    }
    for (i64 r = 0; r < g.R; ++r)
        for (i64 i = 0; i < D; ++i) rows[r * D + i] = x[i * R + r];
    std::memcpy(rows + g.R * D, x, sizeof(T) * D * R);
}

// All copies: the gradient of the weights (gw [G][nw], written) from that of the rows (grows [R][D]).
// Sweeps the plan backwards with each step's input un-computed from its output (x = R^T y for a
// rotation; a signed permutation is not moved but composed into the map from logical to stored
// positions, shared by the values and their gradient: logical i is stored at pos[i], times sgn[i])
template <typename T>
static void table_backward(const Group& g, const T* w, const T* ws, const T* grows, T* gw) {
    const i64 R = TL, D = g.D, M = g.M;
    const T* rots = ws;
    const T* trig = rots + g.G * M * 9;
    const T* rows = trig + g.G * M * 6;
    const T* sign = (const T*)g.sign;
    std::vector<T> grot(g.G * M * 9, T(0)), buf(2 * D * R), rl(9 * R), sgn(D, T(1)), sgn2(D);
    std::vector<i64> pos(D), pos2(D);
    T *gl = buf.data(), *x = gl + D * R;
    // the last step's output (the rows in lanes, as the forward left them) and its gradient
    std::memcpy(x, rows + g.R * D, sizeof(T) * D * R);
    for (i64 i = 0; i < D; ++i) {
        pos[i] = i;
        for (i64 r = 0; r < R; ++r) gl[i * R + r] = r < g.R ? grows[r * D + i] : T(0);
    }
    QLSTM_LANE_VECTOR(V, T, TL);
    V* X = (V*)x;
    V* Gl = (V*)gl;
    for (i64 s = g.S - 1; s >= 0; --s) {
        const i64 type = g.plan[3 * s], a = g.plan[3 * s + 1], b = g.plan[3 * s + 2];
        if (type == 0) {  // y[i] = x[src[i]] s[i], s = +-1: x[j] = y[inv[j]] s[inv[j]], the same for the gradient
            const i64* inv = g.inv + a * D;
            const T* sg = sign + a * D;
            for (i64 j = 0; j < D; ++j) {
                pos2[j] = pos[inv[j]];
                sgn2[j] = sgn[inv[j]] * sg[inv[j]];
            }
            std::swap(pos, pos2);
            std::swap(sgn, sgn2);
            continue;
        }
        lane_rotations<T>(g, rots, b, rl.data());
        const i64 st = pow4(g.nq - 1 - a), blocks = pow4(a);
        // the step's input un-computed in place (x = R^T y, R orthogonal, the identity part passes);
        // dL/dR_ij = sum x_(i+1) g_(j+1); dL/dx_(i+1) = sum_j R_ij g_(j+1); the rows as lane
        // vectors, the nine accumulators in registers
        const V* q = (const V*)rl.data();
        const V q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3], q4 = q[4], q5 = q[5], q6 = q[6], q7 = q[7], q8 = q[8];
        V s0 = {}, s1 = {}, s2 = {}, s3 = {}, s4 = {}, s5 = {}, s6 = {}, s7 = {}, s8 = {};
        for (i64 hb = 0; hb < blocks; ++hb)
            for (i64 lo = 0; lo < st; ++lo) {
                const i64 l1 = hb * 4 * st + lo + st, l2 = l1 + st, l3 = l2 + st;
                const i64 i1 = pos[l1], i2 = pos[l2], i3 = pos[l3];
                const T z1 = sgn[l1], z2 = sgn[l2], z3 = sgn[l3];
                const V y1 = X[i1] * z1, y2 = X[i2] * z2, y3 = X[i3] * z3;
                const V g1 = Gl[i1] * z1, g2 = Gl[i2] * z2, g3 = Gl[i3] * z3;
                const V x1 = q0 * y1 + q1 * y2 + q2 * y3, x2 = q3 * y1 + q4 * y2 + q5 * y3,
                        x3 = q6 * y1 + q7 * y2 + q8 * y3;
                X[i1] = x1 * z1; X[i2] = x2 * z2; X[i3] = x3 * z3;
                s0 += x1 * g1; s1 += x1 * g2; s2 += x1 * g3;
                s3 += x2 * g1; s4 += x2 * g2; s5 += x2 * g3;
                s6 += x3 * g1; s7 += x3 * g2; s8 += x3 * g3;
                Gl[i1] = (q0 * g1 + q1 * g2 + q2 * g3) * z1;
                Gl[i2] = (q3 * g1 + q4 * g2 + q5 * g3) * z2;
                Gl[i3] = (q6 * g1 + q7 * g2 + q8 * g3) * z3;
            }
        const V A[9] = {s0, s1, s2, s3, s4, s5, s6, s7, s8};
        for (i64 c = 0; c < g.G; ++c) {
            T* G3 = grot.data() + (c * M + b) * 9;
            for (int e = 0; e < 9; ++e)
                for (i64 k = 0; k < g.K; ++k) G3[e] += A[e][c * g.K + k];
        }
    }
    for (i64 i = 0; i < g.G * g.nw; ++i) gw[i] = 0;
    for (i64 c = 0; c < g.G; ++c)
        for (i64 m = 0; m < M; ++m) {
            T ga[3];
            zyz_back<T>(trig + (c * M + m) * 6, grot.data() + (c * M + m) * 9, ga);
            for (int e = 0; e < 3; ++e) gw[c * g.nw + g.idx[e * M + m]] += ga[e];
        }
}

// the Chen encoding's derivative: dL/dv from the gradients (g1, g2, g3) of the 4-vector's last three
template <typename T>
static inline T chen_q_back(T v, T g1, T g2, T g3) {
    const T v2 = v * v, a = T(1) / std::sqrt(1 + v2), b = T(1) / std::sqrt(1 + v2 * v2), ab = a * b;
    const T dab = -ab * v * (a * a + 2 * v2 * b * b);
    return g1 * dab + g2 * (dab * v2 + 2 * v * ab) - g3 * (a * a * a);
}

// the Chen Pauli 4-vectors of W values: q [4][W]
template <typename T, int W>
static inline void chen_q_lanes(const T* v, T* q) {
#pragma omp simd
    for (int l = 0; l < W; ++l) {
        const T x = v[l], x2 = x * x, a = T(1) / std::sqrt(1 + x2), ab = a / std::sqrt(1 + x2 * x2);
        q[l] = 1; q[W + l] = ab; q[2 * W + l] = ab * x2; q[3 * W + l] = -a * x;
    }
}

// features [4**n][W] of values v [n][W] (wire 0 most significant)
template <typename T, int W>
static void features_lanes(const T* v, i64 n, T* f, T* q) {
    if constexpr (W > 1) {
        QLSTM_LANE_VECTOR(V, T, W);
        V* F = (V*)f;
        const V* Q = (const V*)q;
        F[0] = V{} + T(1);
        i64 len = 1;
        for (i64 w = 0; w < n; ++w) {
            chen_q_lanes<T, W>(v + w * W, q);
            const V q0 = Q[0], q1 = Q[1], q2 = Q[2], q3 = Q[3];
            for (i64 i = len - 1; i >= 0; --i) {  // in place, from the top: F[i] is read before it is overwritten
                const V fi = F[i];
                F[4 * i + 3] = fi * q3; F[4 * i + 2] = fi * q2; F[4 * i + 1] = fi * q1; F[4 * i] = fi * q0;
            }
            len *= 4;
        }
        return;
    }
    for (int l = 0; l < W; ++l) f[l] = 1;
    i64 len = 1;
    for (i64 w = 0; w < n; ++w) {
        chen_q_lanes<T, W>(v + w * W, q);
        for (i64 i = len - 1; i >= 0; --i) {
            const T* fi = f + i * W;
            for (int d = 3; d >= 0; --d) {
                T* o = f + (4 * i + d) * W;
                const T* qd = q + d * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) o[l] = fi[l] * qd[l];
            }
        }
        len *= 4;
    }
}

// gv [n][W] from the features' gradient gf [4**n][W]; scratch: 3 4**n W + 4 n W values. Contracts
// gf wire by wire from the most significant: A_0 = gf, A_{w+1} = sum_d q_w[d] A_w[d, :], and
// dL/dq_w[d] = A_w[d, :] . (q_{w+1} (x) ... (x) q_{n-1})
template <typename T, int W>
static void features_back_lanes(const T* v, i64 n, const T* gf, T* gv, T* scratch) {
    if constexpr (W > 1) {  // the same contractions on lane vectors, the identity component's skipped
        QLSTM_LANE_VECTOR(V, T, W);
        V* qs = (V*)scratch;     // [n][4]
        V* suf = qs + 4 * n;     // suffix products, wire w's at off[w]
        V* acc = suf + pow4(n);  // A_w, ping-pong in two halves of 4**n
        for (i64 w = 0; w < n; ++w) chen_q_lanes<T, W>(v + w * W, (T*)(qs + 4 * w));
        i64 off[32];
        off[n - 1] = 0;
        suf[0] = V{} + T(1);
        for (i64 w = n - 2; w >= 0; --w) {
            const i64 len = pow4(n - 2 - w), o = off[w + 1] + len;
            off[w] = o;
            const V* x = suf + off[w + 1];
            for (int d = 0; d < 4; ++d) {
                const V qd = qs[4 * (w + 1) + d];
                V* y = suf + o + d * len;
                for (i64 lo = 0; lo < len; ++lo) y[lo] = qd * x[lo];
            }
        }
        const V* a = (const V*)gf;
        V* bufs[2] = {acc, acc + pow4(n) / 2};
        int which = 0;
        for (i64 w = 0; w < n; ++w) {
            const i64 len = pow4(n - 1 - w);
            const V* sw = suf + off[w];
            const V *a0 = a, *a1 = a + len, *a2 = a + 2 * len, *a3 = a + 3 * len;
            V g1 = {}, g2 = {}, g3 = {};  // dL/dq_w[1..3] (q_w[0] = 1 is no function of v)
            if (w + 1 < n) {  // with A_(w+1) in the same pass
                V* nx = bufs[which];
                which ^= 1;
                const V q0 = qs[4 * w], q1 = qs[4 * w + 1], q2 = qs[4 * w + 2], q3 = qs[4 * w + 3];
                for (i64 lo = 0; lo < len; ++lo) {
                    const V sl = sw[lo], x1 = a1[lo], x2 = a2[lo], x3 = a3[lo];
                    g1 += x1 * sl; g2 += x2 * sl; g3 += x3 * sl;
                    nx[lo] = q0 * a0[lo] + q1 * x1 + q2 * x2 + q3 * x3;
                }
                a = nx;
            } else {
                for (i64 lo = 0; lo < len; ++lo) {
                    const V sl = sw[lo];
                    g1 += a1[lo] * sl; g2 += a2[lo] * sl; g3 += a3[lo] * sl;
                }
            }
            for (int l = 0; l < W; ++l) gv[w * W + l] = chen_q_back<T>(v[w * W + l], g1[l], g2[l], g3[l]);
        }
        return;
    }
    T* qs = scratch;             // [n][4][W]
    T* suf = qs + 4 * n * W;     // suffix products, wire w's at off[w]
    T* acc = suf + pow4(n) * W;  // A_w, ping-pong in two halves of 4**n W
    for (i64 w = 0; w < n; ++w) chen_q_lanes<T, W>(v + w * W, qs + 4 * w * W);
    i64 off[32];
    off[n - 1] = 0;
    for (int l = 0; l < W; ++l) suf[l] = 1;
    for (i64 w = n - 2; w >= 0; --w) {
        const i64 len = pow4(n - 2 - w), o = off[w + 1] + len;
        off[w] = o;
        for (int d = 0; d < 4; ++d) {
            const T* qd = qs + (4 * (w + 1) + d) * W;
            for (i64 lo = 0; lo < len; ++lo) {
                const T* x = suf + (off[w + 1] + lo) * W;
                T* y = suf + (o + d * len + lo) * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) y[l] = qd[l] * x[l];
            }
        }
    }
    const T* a = gf;
    T* bufs[2] = {acc, acc + pow4(n) * W / 2};
    int which = 0;
    for (i64 w = 0; w < n; ++w) {
        const i64 len = pow4(n - 1 - w);
        const T* sw = suf + off[w] * W;
        const T* q = qs + 4 * w * W;
        T gq[4][W];
        for (int d = 0; d < 4; ++d) {
            for (int l = 0; l < W; ++l) gq[d][l] = 0;
            for (i64 lo = 0; lo < len; ++lo) {
                const T *row = a + (d * len + lo) * W, *s = sw + lo * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) gq[d][l] += row[l] * s[l];
            }
        }
        for (int l = 0; l < W; ++l) gv[w * W + l] = chen_q_back<T>(v[w * W + l], gq[1][l], gq[2][l], gq[3][l]);
        if (w + 1 < n) {
            T* nx = bufs[which];
            which ^= 1;
            for (i64 lo = 0; lo < len; ++lo) {
                const T *a0 = a + lo * W, *a1 = a + (len + lo) * W, *a2 = a + (2 * len + lo) * W, *a3 = a + (3 * len + lo) * W;
                T* y = nx + lo * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) y[l] = q[l] * a0[l] + q[W + l] * a1[l] + q[2 * W + l] * a2[l] + q[3 * W + l] * a3[l];
            }
            a = nx;
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

// Branch-free exp, expm1, sigmoid and tanh that vectorise in loops over lanes (libm's are calls,
// one value at a time). x = n ln 2 + r with |r| <= ln(2) / 2, expm1(r) by its Taylor series to a
// relative error below the type's epsilon, 2**n by its exponent bits.
// (__builtin_bit_cast vectorises where a memcpy does not; older compilers get the memcpy)
#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define QLSTM_BIT_CAST(T, v) __builtin_bit_cast(T, v)
#endif
#endif
#ifndef QLSTM_BIT_CAST
template <typename T, typename U>
static inline T qlstm_bit_cast(U v) {
    T t;
    std::memcpy(&t, &v, sizeof t);
    return t;
}
#define QLSTM_BIT_CAST(T, v) qlstm_bit_cast<T>(v)
#endif
static inline float pow2n(float n) { return QLSTM_BIT_CAST(float, (int32_t(n) + 127) << 23); }
static inline double pow2n(double n) { return QLSTM_BIT_CAST(double, (int64_t(n) + 1023) << 52); }
static inline float expm1_series(float r) {  // to r^8 / 8!
    float p = 1.f / 40320;
    p = p * r + 1.f / 5040; p = p * r + 1.f / 720; p = p * r + 1.f / 120; p = p * r + 1.f / 24;
    p = p * r + 1.f / 6; p = p * r + 0.5f; p = p * r + 1.f;
    return p * r;
}
static inline double expm1_series(double r) {  // to r^13 / 13!
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600; p = p * r + 1.0 / 39916800; p = p * r + 1.0 / 3628800; p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320; p = p * r + 1.0 / 5040; p = p * r + 1.0 / 720; p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24; p = p * r + 1.0 / 6; p = p * r + 0.5; p = p * r + 1.0;
    return p * r;
}
template <typename T>
static inline T expm1_reduced(T x, T& n) {
    const bool f = sizeof(T) == 4;
    const T lo = f ? T(-87) : T(-708), hi = f ? T(88) : T(709);
    x = x < lo ? lo : (x > hi ? hi : x);
    // round to nearest by adding and removing 1.5 * 2**(mantissa bits) (no floor: it does not
    // vectorise without -fno-trapping-math)
    const T magic = f ? T(12582912.0) : T(6755399441055744.0);
    n = (x * T(1.4426950408889634) + magic) - magic;
    return expm1_series((x - n * T(0.693145751953125)) - n * T(1.4286068203094172e-06));
}
template <typename T>
static inline T vexp(T x) {
    T n;
    const T e = expm1_reduced<T>(x, n);
    return (e + T(1)) * pow2n(n);
}
template <typename T>
static inline T vexpm1(T x) {
    T n;
    const T e = expm1_reduced<T>(x, n);
    const T s = pow2n(n);
    return s * e + (s - T(1));
}
template <typename T>
static inline T vsigmoid(T z) { return T(1) / (T(1) + vexp<T>(-z)); }
template <typename T>
static inline T vtanh(T z) {
    const T t = vexpm1<T>(T(-2) * std::fabs(z));
    return std::copysign(-t / (T(2) + t), z);
}

// The LSTM cell on W lanes, vectorised: from the four pre-activations (forget, input, candidate,
// output) ef .. eo [W], the cell state c [W] (updated to c_t), the values the backward needs,
// sv = (sf, si, so, tg, c_prev, tanh c_t) [6][W] (stride ss between them), and u_t = so tanh c_t [W]
template <typename T, int W>
static inline void cell_lanes(const T* ef, const T* ei, const T* eg, const T* eo, T* c, T* sv, i64 ss, T* u) {
#pragma omp simd
    for (int l = 0; l < W; ++l) {
        const T sf = vsigmoid<T>(ef[l]), si = vsigmoid<T>(ei[l]), so = vsigmoid<T>(eo[l]), tg = vtanh<T>(eg[l]);
        const T cp = c[l], cn = sf * cp + si * tg, tc = vtanh<T>(cn);
        sv[l] = sf; sv[ss + l] = si; sv[2 * ss + l] = so; sv[3 * ss + l] = tg; sv[4 * ss + l] = cp; sv[5 * ss + l] = tc;
        c[l] = cn; u[l] = so * tc;
    }
}

// its backward: the pre-activations' gradients ge [4][W] (stride gs) from those of u_t and c_t
// (gu, gc [W]; gc replaced by that of c_(t-1)); c: the values cell_lanes saved (stride cs)
template <typename T, int W>
static inline void cell_back_lanes(const T* gu, T* gc, const T* c, i64 cs, T* ge, i64 gs) {
#pragma omp simd
    for (int l = 0; l < W; ++l) {
        const T sf = c[l], si = c[cs + l], so = c[2 * cs + l], tg = c[3 * cs + l], cp = c[4 * cs + l], tc = c[5 * cs + l];
        const T g = gu[l], gcc = gc[l] + g * so * (1 - tc * tc);
        ge[l] = gcc * cp * sf * (1 - sf);
        ge[gs + l] = gcc * tg * si * (1 - si);
        ge[2 * gs + l] = gcc * si * (1 - tg * tg);
        ge[3 * gs + l] = g * tc * so * (1 - so);
        gc[l] = gcc * sf;
    }
}

struct Dims {
    i64 B, T, I, H, n, Dg, Dp, W;
    Group gg, gp;
    i64 off_gp, off_steps, per_step;
};

// d: B, T, I, H, (nq, G, K, nw, M, S) of the gate group and of the processing group, then W, the
// samples per lane group (1: one sample at a time); consts: the 6 + 6 group constants
static Dims read_dims(const i64* d, void** consts) {
    Dims m;
    m.B = d[0]; m.T = d[1]; m.I = d[2]; m.H = d[3];
    m.gg = read_group(d + 4, consts);
    m.gp = read_group(d + 10, consts + 6);
    m.W = d[16];
    m.n = m.I + m.H; m.Dg = m.gg.D; m.Dp = m.gp.D;  // faithful: 4**n and 4**H; adapter: 4**nq both
    m.off_gp = group_ws(m.gg);
    m.off_steps = m.off_gp + group_ws(m.gp);
    // per step (the features are recomputed): one sample at a time (W = 1) v [B n], cell (sf si so
    // tg cprev tc) [6 B H], u [B H]; in lane groups the same per group (lanes_forward)
    m.per_step = padded(m.B, m.W) * (m.n + 7 * m.H);
    return m;
}

template <typename T>
static const T* rows_of(const Group& g, const T* ws) { return ws + g.G * g.M * 15; }

template <typename T>
static bool finite(const T* a, i64 n) {
    for (i64 i = 0; i < n; ++i)
        if (!std::isfinite(a[i])) return false;
    return true;
}

// 1, 2, 3 where x, h0, c0 hold a NaN or an infinity (nx, nh values), else 0; a NULL h0 or c0 is
// the zero state
template <typename T>
static int nonfinite(const T* x, const T* h0, const T* c0, i64 nx, i64 nh) {
    if (!finite(x, nx)) return 1;
    if (h0 && !finite(h0, nh)) return 2;
    if (c0 && !finite(c0, nh)) return 3;
    return 0;
}

// p: consts (12), w_gates, w_proc, workspace: both groups' tables
template <typename T>
static int tables(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    T* ws = (T*)p[14];
    table_forward<T>(m.gg, (const T*)p[12], ws);
    table_forward<T>(m.gp, (const T*)p[13], ws + m.off_gp);
    return 0;
}

// p: consts (12), x, h0, c0 (NULL: zeros), out, h_T, c_T, workspace (tables filled); one sample at a time.
// Returns 1, 2, 3 where x, h0, c0 hold a NaN or an infinity, before computing.
template <typename T>
static int forward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *x = (const T*)p[12], *h0 = (const T*)p[13], *c0 = (const T*)p[14];
    T *out = (T*)p[15], *hT = (T*)p[16], *cT = (T*)p[17], *ws = (T*)p[18];
    const i64 B = m.B, H = m.H, I = m.I, n = m.n;
    if (const int bad = nonfinite(x, h0, c0, B * m.T * I, B * H)) return bad;
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
#pragma omp parallel if (parallel_ok(B, m.Dg))
    {
    std::vector<T> e(4 * H), pr(2 * H), f(m.Dg > m.Dp ? m.Dg : m.Dp), q(4);
#pragma omp for schedule(static)
    for (i64 b = 0; b < B; ++b) {
        T* h = hT + b * H;
        T* c = cT + b * H;
        for (i64 k = 0; k < H; ++k) { h[k] = h0 ? h0[b * H + k] : T(0); c[k] = c0 ? c0[b * H + k] : T(0); }
        for (i64 t = 0; t < m.T; ++t) {
            T* st = ws + m.off_steps + t * m.per_step;
            T *v = st + b * n, *cell = st + B * n, *u = cell + 6 * B * H;
            for (i64 i = 0; i < I; ++i) v[i] = x[(b * m.T + t) * I + i];
            for (i64 k = 0; k < H; ++k) v[I + k] = h[k];
            features_lanes<T, 1>(v, n, f.data(), q.data());
            dots<T>(f.data(), rows_g, 4 * H, m.Dg, e.data());
            for (i64 k = 0; k < H; ++k)
                cell_lanes<T, 1>(e.data() + k, e.data() + H + k, e.data() + 2 * H + k, e.data() + 3 * H + k, c + k,
                                 cell + b * H + k, B * H, u + b * H + k);
            features_lanes<T, 1>(u + b * H, H, f.data(), q.data());
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

// p: consts (12), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, grows_gates, grows_proc; one sample
// at a time; the rows' gradients are written (not accumulated) to grows_*
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
#pragma omp parallel if (parallel_ok(B, m.Dg))
    {
    std::vector<T> gp(2 * H), ge(4 * H), f(Dmax), q(4), gf(Dmax), gv(n), gu(H), scratch(3 * Dmax + 4 * n), ghs(H),
        gcs(H);
    std::vector<T> mine_g(ng, T(0)), mine_p(np_, T(0));  // this thread's share of the rows' gradients
#pragma omp for schedule(static)
    for (i64 b = 0; b < B; ++b) {
        T* gh = ghs.data();
        T* gc = gcs.data();
        for (i64 k = 0; k < H; ++k) { gh[k] = g_h ? g_h[b * H + k] : T(0); gc[k] = g_c ? g_c[b * H + k] : T(0); }
        for (i64 t = m.T - 1; t >= 0; --t) {
            const T* st = ws + m.off_steps + t * m.per_step;
            const T *v = st + b * n, *cell = st + B * n, *u = cell + 6 * B * H;
            for (i64 k = 0; k < H; ++k) { gp[k] = gh[k]; gp[H + k] = g_out ? g_out[(b * m.T + t) * H + k] : T(0); }
            features_lanes<T, 1>(u + b * H, H, f.data(), q.data());
            for (i64 j = 0; j < 2 * H; ++j) axpy<T>(gp[j], f.data(), mine_p.data() + j * m.Dp, m.Dp);
            combine<T>(gp.data(), rows_p, 2 * H, m.Dp, gf.data());
            features_back_lanes<T, 1>(u + b * H, H, gf.data(), gu.data(), scratch.data());
            for (i64 k = 0; k < H; ++k)
                cell_back_lanes<T, 1>(gu.data() + k, gc + k, cell + b * H + k, B * H, ge.data() + k, H);
            features_lanes<T, 1>(v, n, f.data(), q.data());
            for (i64 j = 0; j < 4 * H; ++j) axpy<T>(ge[j], f.data(), mine_g.data() + j * m.Dg, m.Dg);
            combine<T>(ge.data(), rows_g, 4 * H, m.Dg, gf.data());
            features_back_lanes<T, 1>(v, n, gf.data(), gv.data(), scratch.data());
            if (gx)
                for (i64 i = 0; i < I; ++i) gx[(b * m.T + t) * I + i] = gv[i];
            for (i64 k = 0; k < H; ++k) gh[k] = gv[I + k];
        }
        for (i64 k = 0; k < H; ++k) {
            if (gh0) gh0[b * H + k] = gh[k];
            if (gc0) gc0[b * H + k] = gc[k];
        }
    }
#pragma omp critical
    {
        for (i64 i = 0; i < ng; ++i) grows_g[i] += mine_g[i];
        for (i64 i = 0; i < np_; ++i) grows_p[i] += mine_p[i];
    }
    }
    return 0;
}

// p: consts (12), workspace, w_gates, w_proc, g_w_gates, g_w_proc (written), grows_gates,
// grows_proc (the rows' gradients)
template <typename T>
static int tables_backward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T* ws = (const T*)p[12];
    table_backward<T>(m.gg, (const T*)p[13], ws, (const T*)p[17], (T*)p[15]);
    table_backward<T>(m.gp, (const T*)p[14], ws + m.off_gp, (const T*)p[18], (T*)p[16]);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The layered (statevector) form, for VQCs of any size: the Chen product state, then stages that
// are phased permutations of the amplitudes or layers of one-qubit gates ([L][n][G][2][2] complex
// matrices: given, or Rot gates built here from the weights), then <Z> read-outs through a sign
// table [D][K]. Backward by the adjoint method: the state is un-computed gate by gate (the gates
// are unitary) alongside the adjoint vector, so nothing but the cell values is stored per step.
//
// Samples run W at a time in the lanes of every array (amplitude i of lane l at i * W + l): each
// operation is then the same for all lanes, and vectorises whatever the wire's stride.
//
// A layered group: nq qubits, D = 2**nq amplitudes, G copies, K read-outs, L layers, S stages
// (type, a, b): type 0 the permutation a (b: whether it has phases), type 1 the layer a; consts
// stages [S][3], idx [P][D], inv [P][D], phase [P][D][2], signs [D][K], slot [L][nq] (the Rot gate
// on that wire in that layer, -1 where none), rot_idx [3][M] (angle indices of the Rot gates).

struct LGroup {
    i64 nq, D, G, K, L, S, nw, M, from_weights;
    const i64 *stages, *idx, *inv, *slot, *rot_idx;
    const void *phase, *signs;
};

static LGroup read_lgroup(const i64* d, void** p) {
    LGroup g;
    g.nq = d[0]; g.G = d[1]; g.K = d[2]; g.L = d[3]; g.S = d[4]; g.nw = d[5]; g.M = d[6]; g.from_weights = d[7];
    g.D = i64(1) << g.nq;
    g.stages = (const i64*)p[0]; g.idx = (const i64*)p[1]; g.inv = (const i64*)p[2];
    g.phase = p[3]; g.signs = p[4]; g.slot = (const i64*)p[5]; g.rot_idx = (const i64*)p[6];
    return g;
}

static const int LCONSTS = 7;  // constants per layered group

struct LDims {
    i64 B, T, I, H, n, W;
    LGroup gg, gp;
    i64 per_step;
};

// d: B, T, I, H, (nq, G, K, L, S, nw, M, from_weights) of the gate group and of the processing
// group, W (lanes); consts: 7 + 7
static LDims read_ldims(const i64* d, void** consts) {
    LDims m;
    m.B = d[0]; m.T = d[1]; m.I = d[2]; m.H = d[3];
    m.gg = read_lgroup(d + 4, consts);
    m.gp = read_lgroup(d + 12, consts + LCONSTS);
    m.W = d[20];
    m.n = m.I + m.H;
    m.per_step = padded(m.B, m.W) * (m.n + 7 * m.H);  // the per-step values of lanes_forward
    return m;
}

// Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi) (PennyLane's), 8 reals
template <typename T>
static void rot_matrix(T phi, T theta, T omega, T* M) {
    const T c = std::cos(T(0.5) * theta), s = std::sin(T(0.5) * theta);
    const T a = T(0.5) * (phi + omega), b = T(0.5) * (phi - omega);
    const T ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
    M[0] = ca * c; M[1] = -sa * c; M[2] = -cb * s; M[3] = -sb * s;
    M[4] = cb * s; M[5] = -sb * s; M[6] = ca * c; M[7] = sa * c;
}

// the angles' gradient from the matrix's G (torch's convention: dL/dRe + i dL/dIm)
template <typename T>
static void rot_matrix_back(T phi, T theta, T omega, const T* G, T* ga) {
    const T c = std::cos(T(0.5) * theta), s = std::sin(T(0.5) * theta);
    const T a = T(0.5) * (phi + omega), b = T(0.5) * (phi - omega);
    const T ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
    const T la = G[0] * (-sa * c) + G[1] * (-ca * c) + G[6] * (-sa * c) + G[7] * (ca * c);
    const T lb = G[2] * (sb * s) + G[3] * (-cb * s) + G[4] * (-sb * s) + G[5] * (-cb * s);
    const T lt = T(0.5) * (G[0] * (-ca * s) + G[1] * (sa * s) + G[2] * (-cb * c) + G[3] * (-sb * c)
                           + G[4] * (cb * c) + G[5] * (-sb * c) + G[6] * (-ca * s) + G[7] * (-sa * s));
    ga[0] = T(0.5) * (la + lb); ga[1] = lt; ga[2] = T(0.5) * (la - lb);
}

// the group's matrices [L][nq][G][8] from its weights [G][nw] (from_weights groups)
template <typename T>
static void lgroup_matrices(const LGroup& g, const T* w, T* mats) {
    for (i64 l = 0; l < g.L; ++l)
        for (i64 q = 0; q < g.nq; ++q) {
            const i64 j = g.slot[l * g.nq + q];
            for (i64 c = 0; c < g.G; ++c) {
                T* M = mats + ((l * g.nq + q) * g.G + c) * 8;
                if (j < 0) { M[0] = 1; M[1] = M[2] = M[3] = M[4] = M[5] = 0; M[6] = 1; M[7] = 0; continue; }
                const T* wc = w + c * g.nw;
                rot_matrix<T>(wc[g.rot_idx[j]], wc[g.rot_idx[g.M + j]], wc[g.rot_idx[2 * g.M + j]], M);
            }
        }
}

template <typename T>
static void lgroup_matrices_back(const LGroup& g, const T* w, const T* gm, T* gw) {
    std::memset(gw, 0, sizeof(T) * g.G * g.nw);
    for (i64 l = 0; l < g.L; ++l)
        for (i64 q = 0; q < g.nq; ++q) {
            const i64 j = g.slot[l * g.nq + q];
            if (j < 0) continue;
            for (i64 c = 0; c < g.G; ++c) {
                const T* wc = w + c * g.nw;
                const i64 i0 = g.rot_idx[j], i1 = g.rot_idx[g.M + j], i2 = g.rot_idx[2 * g.M + j];
                T ga[3];
                rot_matrix_back<T>(wc[i0], wc[i1], wc[i2], gm + ((l * g.nq + q) * g.G + c) * 8, ga);
                gw[c * g.nw + i0] += ga[0]; gw[c * g.nw + i1] += ga[1]; gw[c * g.nw + i2] += ga[2];
            }
        }
}

// the Chen encoding of W values, H RY(atan v) RZ(atan v^2) |0>: (re, im) of both amplitudes
// ([2][W] each), and their derivatives in v where dre is given
template <typename T, int W>
static inline void chen_amps(const T* v, T* re, T* im, T* dre, T* dim) {
    const T r2 = T(0.70710678118654752440);
    for (int l = 0; l < W; ++l) {
        const T x = v[l];
        const T th = std::atan(x), ph = std::atan(x * x);
        const T c = std::cos(T(0.5) * th), s = std::sin(T(0.5) * th);
        const T cp = std::cos(T(0.5) * ph), sp = std::sin(T(0.5) * ph);
        const T m0 = (c - s) * r2, m1 = (c + s) * r2;
        re[l] = m0 * cp; im[l] = -m0 * sp;          // m0 e^{-i ph/2}
        re[W + l] = m1 * cp; im[W + l] = m1 * sp;   // m1 e^{+i ph/2}
        if (dre) {
            const T dth = T(1) / (1 + x * x), dph = 2 * x / (1 + x * x * x * x);
            const T dm0 = -(s + c) * r2 * T(0.5) * dth, dm1 = (c - s) * r2 * T(0.5) * dth;
            dre[l] = dm0 * cp - m0 * sp * T(0.5) * dph;       // d(m0 (cp - i sp))
            dim[l] = -dm0 * sp - m0 * cp * T(0.5) * dph;
            dre[W + l] = dm1 * cp - m1 * sp * T(0.5) * dph;   // d(m1 (cp + i sp))
            dim[W + l] = dm1 * sp + m1 * cp * T(0.5) * dph;
        }
    }
}

// psi = (x)_w amp_w (amps [n][2][W]), wire 0 most significant
template <typename T, int W>
static void product_state(const T* are, const T* aim, i64 n, T* re, T* im) {
    for (int l = 0; l < W; ++l) { re[l] = 1; im[l] = 0; }
    i64 len = 1;
    for (i64 w = 0; w < n; ++w) {
        const T *r0 = are + 2 * w * W, *i0 = aim + 2 * w * W, *r1 = r0 + W, *i1 = i0 + W;
        for (i64 k = len - 1; k >= 0; --k) {
            T *pr = re + k * W, *pi = im + k * W;
            T *a_r = re + 2 * k * W, *a_i = im + 2 * k * W, *b_r = a_r + W, *b_i = a_i + W;
#pragma omp simd
            for (int l = 0; l < W; ++l) {
                const T xr = pr[l], xi = pi[l];
                b_r[l] = xr * r1[l] - xi * i1[l]; b_i[l] = xr * i1[l] + xi * r1[l];
                a_r[l] = xr * r0[l] - xi * i0[l]; a_i[l] = xr * i0[l] + xi * r0[l];
            }
        }
        len *= 2;
    }
}

// psi <- M psi on the wire of stride st (in amplitudes)
template <typename T, int W>
static void apply_gate(T* re, T* im, i64 D, i64 st, const T* M) {
    const T ar = M[0], ai = M[1], br = M[2], bi = M[3], cr = M[4], ci = M[5], dr = M[6], di = M[7];
    for (i64 blk = 0; blk < D; blk += 2 * st)
        for (i64 lo = blk; lo < blk + st; ++lo) {
            T *r0 = re + lo * W, *i0 = im + lo * W, *r1 = r0 + st * W, *i1 = i0 + st * W;
#pragma omp simd
            for (int l = 0; l < W; ++l) {
                const T xr = r0[l], xi = i0[l], yr = r1[l], yi = i1[l];
                r0[l] = ar * xr - ai * xi + br * yr - bi * yi;
                i0[l] = ar * xi + ai * xr + br * yi + bi * yr;
                r1[l] = cr * xr - ci * xi + dr * yr - di * yi;
                i1[l] = cr * xi + ci * xr + dr * yi + di * yr;
            }
        }
}

// out[j] = in[idx[j]] * phase[j] (phase optional); with inverse = true, the inverse permutation:
// out[i] = in[idx[i]] * conj(phase[idx[i]]) (idx then the inverse table)
template <typename T, int W>
static void permute(const T* re, const T* im, const i64* idx, const T* ph, bool inverse, i64 D, T* ore, T* oim) {
    for (i64 j = 0; j < D; ++j) {
        const i64 k = idx[j];
        const T *xr = re + k * W, *xi = im + k * W;
        T *yr = ore + j * W, *yi = oim + j * W;
        if (!ph) {
            std::memcpy(yr, xr, sizeof(T) * W);
            std::memcpy(yi, xi, sizeof(T) * W);
            continue;
        }
        const i64 q = inverse ? k : j;
        const T pr = ph[2 * q], pi = inverse ? -ph[2 * q + 1] : ph[2 * q + 1];
#pragma omp simd
        for (int l = 0; l < W; ++l) { yr[l] = xr[l] * pr - xi[l] * pi; yi[l] = xr[l] * pi + xi[l] * pr; }
    }
}

// copy c of the group on psi (re, im), in place (tre, tim: scratch)
template <typename T, int W>
static void lgroup_forward(const LGroup& g, const T* mats, i64 c, T* re, T* im, T* tre, T* tim) {
    const T* phase = (const T*)g.phase;
    for (i64 s = 0; s < g.S; ++s) {
        const i64 type = g.stages[3 * s], a = g.stages[3 * s + 1], b = g.stages[3 * s + 2];
        if (type == 0) {
            permute<T, W>(re, im, g.idx + a * g.D, b ? phase + 2 * a * g.D : nullptr, false, g.D, tre, tim);
            std::memcpy(re, tre, sizeof(T) * g.D * W);
            std::memcpy(im, tim, sizeof(T) * g.D * W);
        } else {
            for (i64 q = 0; q < g.nq; ++q)
                if (g.slot[a * g.nq + q] != -2)  // -2: no gate (given matrices: every slot may hold one)
                    apply_gate<T, W>(re, im, g.D, i64(1) << (g.nq - 1 - q), mats + ((a * g.nq + q) * g.G + c) * 8);
        }
    }
}

// e[k][l] = sum_i |psi_i|^2 signs[i][k]
template <typename T, int W>
static void readout(const LGroup& g, const T* re, const T* im, T* e) {
    const T* signs = (const T*)g.signs;
    for (i64 k = 0; k < g.K * W; ++k) e[k] = 0;
    for (i64 i = 0; i < g.D; ++i) {
        T p[W];
#pragma omp simd
        for (int l = 0; l < W; ++l) p[l] = re[i * W + l] * re[i * W + l] + im[i * W + l] * im[i * W + l];
        for (i64 k = 0; k < g.K; ++k) {
            const T sg = signs[i * g.K + k];
            T* ek = e + k * W;
#pragma omp simd
            for (int l = 0; l < W; ++l) ek[l] += p[l] * sg;
        }
    }
}

// Adjoint sweep of copy c: psi (the output state, un-computed in place back to the input) and the
// adjoint lam (in place: gradient of the output, then of the input state); the gate matrices'
// gradients (torch's convention: dL/dRe + i dL/dIm) added to gm
template <typename T, int W>
static void lgroup_backward(const LGroup& g, const T* mats, i64 c, T* re, T* im, T* lre, T* lim, T* tre,
                            T* tim, T* gm) {
    const T* phase = (const T*)g.phase;
    for (i64 s = g.S - 1; s >= 0; --s) {
        const i64 type = g.stages[3 * s], a = g.stages[3 * s + 1], b = g.stages[3 * s + 2];
        if (type == 0) {
            const T* ph = b ? phase + 2 * a * g.D : nullptr;
            const i64* inv = g.inv + a * g.D;
            permute<T, W>(re, im, inv, ph, true, g.D, tre, tim);
            std::memcpy(re, tre, sizeof(T) * g.D * W);
            std::memcpy(im, tim, sizeof(T) * g.D * W);
            permute<T, W>(lre, lim, inv, ph, true, g.D, tre, tim);
            std::memcpy(lre, tre, sizeof(T) * g.D * W);
            std::memcpy(lim, tim, sizeof(T) * g.D * W);
            continue;
        }
        for (i64 q = g.nq - 1; q >= 0; --q) {
            if (g.slot[a * g.nq + q] == -2) continue;
            const i64 st = i64(1) << (g.nq - 1 - q);
            const i64 off = ((a * g.nq + q) * g.G + c) * 8;
            const T* M = mats + off;
            const T ar = M[0], ai = M[1], br = M[2], bi = M[3], cr = M[4], ci = M[5], dr = M[6], di = M[7];
            T acc[8][W];
            for (int k = 0; k < 8; ++k)
                for (int l = 0; l < W; ++l) acc[k][l] = 0;
            for (i64 blk = 0; blk < g.D; blk += 2 * st)
                for (i64 lo = blk; lo < blk + st; ++lo) {
                    T *r0 = re + lo * W, *i0 = im + lo * W, *r1 = r0 + st * W, *i1 = i0 + st * W;
                    T *l0r = lre + lo * W, *l0i = lim + lo * W, *l1r = l0r + st * W, *l1i = l0i + st * W;
#pragma omp simd
                    for (int l = 0; l < W; ++l) {
                        const T xr = r0[l], xi = i0[l], yr = r1[l], yi = i1[l];
                        // psi before the gate: M^dag psi
                        const T pr = ar * xr + ai * xi + cr * yr + ci * yi, pi = ar * xi - ai * xr + cr * yi - ci * yr;
                        const T qr = br * xr + bi * xi + dr * yr + di * yi, qi = br * xi - bi * xr + dr * yi - di * yr;
                        const T ur = l0r[l], ui = l0i[l], vr = l1r[l], vi = l1i[l];
                        // dL/dM_ab += lam_a conj(psi_b)
                        acc[0][l] += ur * pr + ui * pi; acc[1][l] += ui * pr - ur * pi;
                        acc[2][l] += ur * qr + ui * qi; acc[3][l] += ui * qr - ur * qi;
                        acc[4][l] += vr * pr + vi * pi; acc[5][l] += vi * pr - vr * pi;
                        acc[6][l] += vr * qr + vi * qi; acc[7][l] += vi * qr - vr * qi;
                        r0[l] = pr; i0[l] = pi; r1[l] = qr; i1[l] = qi;
                        l0r[l] = ar * ur + ai * ui + cr * vr + ci * vi; l0i[l] = ar * ui - ai * ur + cr * vi - ci * vr;
                        l1r[l] = br * ur + bi * ui + dr * vr + di * vi; l1i[l] = br * ui - bi * ur + dr * vi - di * vr;
                    }
                }
            T* G = gm + off;
            for (int k = 0; k < 8; ++k) {
                T sum = 0;
                for (int l = 0; l < W; ++l) sum += acc[k][l];
                G[k] += sum;
            }
        }
    }
}

// dL/dv_w = Re sum_i conj(lam_i) d psi_0 / d v_w for the product state of amps (are, aim; derivatives
// dre, dim; [n][2][W]): the adjoint contracted wire by wire (scratch: 6 D W values); gv [n][W]
template <typename T, int W>
static void product_back(const T* are, const T* aim, const T* dre, const T* dim, i64 n, const T* lre,
                         const T* lim, T* gv, T* scratch) {
    const i64 D = i64(1) << n;
    T* sre = scratch;  // the suffix products of wires w+1..n-1, wire w's at off[w]
    T* sim = sre + D * W;
    T* ar_ = sim + D * W;  // the partial contractions A_w, ping-pong
    T* ai_ = ar_ + D * W;
    T* br_ = ai_ + D * W;
    T* bi_ = br_ + D * W;
    i64 off[64];
    off[n - 1] = 0;
    for (int l = 0; l < W; ++l) { sre[l] = 1; sim[l] = 0; }
    for (i64 w = n - 2; w >= 0; --w) {
        const i64 len = i64(1) << (n - 2 - w), o = off[w + 1] + len;
        off[w] = o;
        for (int a = 0; a < 2; ++a) {
            const T *r = are + (2 * (w + 1) + a) * W, *i = aim + (2 * (w + 1) + a) * W;
            for (i64 lo = 0; lo < len; ++lo) {
                const T *xr = sre + (off[w + 1] + lo) * W, *xi = sim + (off[w + 1] + lo) * W;
                T *yr = sre + (o + a * len + lo) * W, *yi = sim + (o + a * len + lo) * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) { yr[l] = r[l] * xr[l] - i[l] * xi[l]; yi[l] = r[l] * xi[l] + i[l] * xr[l]; }
            }
        }
    }
    // A_0 = conj(lam): the sign of its imaginary part is carried in sg
    const T* cr = lre;
    const T* ci = lim;
    T sg = -1;
    for (i64 w = 0; w < n; ++w) {
        const i64 len = i64(1) << (n - 1 - w);
        const T *swr = sre + off[w] * W, *swi = sim + off[w] * W;
        T chr[2][W], chi[2][W];
        for (int a = 0; a < 2; ++a) {
            for (int l = 0; l < W; ++l) { chr[a][l] = 0; chi[a][l] = 0; }
            for (i64 lo = 0; lo < len; ++lo) {
                const T *xr = cr + (a * len + lo) * W, *xi = ci + (a * len + lo) * W;
                const T *zr = swr + lo * W, *zi = swi + lo * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) {
                    const T yi = sg * xi[l];
                    chr[a][l] += xr[l] * zr[l] - yi * zi[l];
                    chi[a][l] += xr[l] * zi[l] + yi * zr[l];
                }
            }
        }
        const T *d0r = dre + 2 * w * W, *d0i = dim + 2 * w * W, *d1r = d0r + W, *d1i = d0i + W;
        for (int l = 0; l < W; ++l)  // Re(chi_0 d amp_0 + chi_1 d amp_1)
            gv[w * W + l] = chr[0][l] * d0r[l] - chi[0][l] * d0i[l] + chr[1][l] * d1r[l] - chi[1][l] * d1i[l];
        if (w + 1 < n) {  // A_{w+1} = sum_a amp_w[a] A_w[a, :]
            T* nr = (cr == ar_) ? br_ : ar_;
            T* ni = (cr == ar_) ? bi_ : ai_;
            const T *a0r = are + 2 * w * W, *a0i = aim + 2 * w * W, *a1r = a0r + W, *a1i = a0i + W;
            for (i64 lo = 0; lo < len; ++lo) {
                const T *xr = cr + lo * W, *xi = ci + lo * W, *yr = cr + (len + lo) * W, *yi = ci + (len + lo) * W;
                T *zr = nr + lo * W, *zi = ni + lo * W;
#pragma omp simd
                for (int l = 0; l < W; ++l) {
                    const T x_i = sg * xi[l], y_i = sg * yi[l];
                    zr[l] = a0r[l] * xr[l] - a0i[l] * x_i + a1r[l] * yr[l] - a1i[l] * y_i;
                    zi[l] = a0r[l] * x_i + a0i[l] * xr[l] + a1r[l] * y_i + a1i[l] * yr[l];
                }
            }
            cr = nr; ci = ni;
            sg = 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The recurrence in lane groups, shared by both forms: W samples at a time, a group's VQCs
// evaluated by the form's functor (Ev: gates(t, v [n][W], e [4H][W]) and process(t, u [H][W],
// p [2H][W]); backward: process_back(t, u, gp [2H][W], gu [H][W]), gates_back(t, v, ge [4H][W],
// gv [n][W]), end_group() after each lane group, finish() once per thread, then reduce() once per
// thread in a critical section).

// the lanes of group k: samples k W .. k W + W - 1, lanes past B repeat the last sample (their
// results are not written, their gradients are zero)
static inline i64 lane_sample(i64 k, int l, i64 W, i64 B) {
    const i64 b = k * W + l;
    return b < B ? b : B - 1;
}

struct Rec {
    i64 B, T, I, H, n, per_step;
    // the per-step values in the workspace, per lane group k of W samples at steps + t per_step +
    // k W (n + 7 H): v [n][W], cell (sf si so tg cprev tc) [6][H][W], u [H][W] (the lanes
    // contiguous: no gathers between the forward and the backward)
};

template <typename T, int W, class Make>
static void lanes_forward(const Rec& r, const T* x, const T* h0, const T* c0, T* out, T* hT, T* cT, T* steps,
                          Make make) {
    const i64 B = r.B, H = r.H, I = r.I, n = r.n, blocks = (B + W - 1) / W, group = W * (n + 7 * H);
#pragma omp parallel if (blocks >= 2)
    {
    auto ev = make();
    std::vector<T> e(4 * H * W), pr(2 * H * W), hl(H * W), cl(H * W);
#pragma omp for schedule(static)
    for (i64 k = 0; k < blocks; ++k) {
        for (int l = 0; l < W; ++l) {
            const i64 b = lane_sample(k, l, W, B);
            for (i64 j = 0; j < H; ++j) {
                hl[j * W + l] = h0 ? h0[b * H + j] : T(0);
                cl[j * W + l] = c0 ? c0[b * H + j] : T(0);
            }
        }
        for (i64 t = 0; t < r.T; ++t) {
            T* vl = steps + t * r.per_step + k * group;
            T *cell = vl + n * W, *ul = cell + 6 * H * W;
            for (int l = 0; l < W; ++l) {
                const i64 b = lane_sample(k, l, W, B);
                for (i64 i = 0; i < I; ++i) vl[i * W + l] = x[(b * r.T + t) * I + i];
            }
            std::memcpy(vl + I * W, hl.data(), sizeof(T) * H * W);
            ev.gates(t, vl, e.data());
            for (i64 j = 0; j < H; ++j)
                cell_lanes<T, W>(e.data() + j * W, e.data() + (H + j) * W, e.data() + (2 * H + j) * W,
                                 e.data() + (3 * H + j) * W, cl.data() + j * W, cell + j * W, H * W, ul + j * W);
            ev.process(t, ul, pr.data());
            std::memcpy(hl.data(), pr.data(), sizeof(T) * H * W);
            for (int l = 0; l < W; ++l) {
                const i64 b = k * W + l;
                if (b < B)
                    for (i64 j = 0; j < H; ++j) out[(b * r.T + t) * H + j] = pr[(H + j) * W + l];
            }
        }
        for (int l = 0; l < W; ++l) {
            const i64 b = k * W + l;
            if (b < B)
                for (i64 j = 0; j < H; ++j) { hT[b * H + j] = hl[j * W + l]; cT[b * H + j] = cl[j * W + l]; }
        }
    }
    }
}

template <typename T, int W, class Make>
static void lanes_backward(const Rec& r, const T* steps, const T* g_out, const T* g_h, const T* g_c, T* gx, T* gh0,
                           T* gc0, Make make) {
    const i64 B = r.B, H = r.H, I = r.I, n = r.n, blocks = (B + W - 1) / W, group = W * (n + 7 * H);
#pragma omp parallel if (blocks >= 2)
    {
    auto ev = make();
    std::vector<T> gp(2 * H * W), ge(4 * H * W), gv(n * W), gu(H * W), ghl(H * W), gcl(H * W);
#pragma omp for schedule(static)
    for (i64 k = 0; k < blocks; ++k) {
        for (int l = 0; l < W; ++l) {
            const i64 b = k * W + l;
            for (i64 j = 0; j < H; ++j) {
                ghl[j * W + l] = b < B && g_h ? g_h[b * H + j] : T(0);
                gcl[j * W + l] = b < B && g_c ? g_c[b * H + j] : T(0);
            }
        }
        for (i64 t = r.T - 1; t >= 0; --t) {
            const T* vl = steps + t * r.per_step + k * group;
            const T *cell = vl + n * W, *ul = cell + 6 * H * W;
            std::memcpy(gp.data(), ghl.data(), sizeof(T) * H * W);
            for (int l = 0; l < W; ++l) {
                const i64 b = k * W + l;
                for (i64 j = 0; j < H; ++j) gp[(H + j) * W + l] = b < B && g_out ? g_out[(b * r.T + t) * H + j] : T(0);
            }
            ev.process_back(t, ul, gp.data(), gu.data());
            for (i64 j = 0; j < H; ++j)
                cell_back_lanes<T, W>(gu.data() + j * W, gcl.data() + j * W, cell + j * W, H * W, ge.data() + j * W, H * W);
            ev.gates_back(t, vl, ge.data(), gv.data());
            std::memcpy(ghl.data(), gv.data() + I * W, sizeof(T) * H * W);
            if (gx)
                for (int l = 0; l < W; ++l) {
                    const i64 b = k * W + l;
                    if (b < B)
                        for (i64 i = 0; i < I; ++i) gx[(b * r.T + t) * I + i] = gv[i * W + l];
                }
        }
        for (int l = 0; l < W; ++l) {
            const i64 b = k * W + l;
            if (b < B)
                for (i64 j = 0; j < H; ++j) {
                    if (gh0) gh0[b * H + j] = ghl[j * W + l];
                    if (gc0) gc0[b * H + j] = gcl[j * W + l];
                }
        }
        ev.end_group();
    }
    ev.finish();
#pragma omp critical
    ev.reduce();
    }
}

// The layered form's evaluation of both VQC groups on W lanes (each group's own qubits take its
// inputs); one thread's scratch: a product state, a copy's state, a permutation buffer
template <typename T, int W>
struct LayeredEv {
    const LGroup &gg, &gp; const T *mg, *mp;
    std::vector<T> buf, amps;
    LayeredEv(const LGroup& g, const LGroup& p, const T* mg_, const T* mp_)
        : gg(g), gp(p), mg(mg_), mp(mp_), buf(6 * (g.D > p.D ? g.D : p.D) * W),
          amps(4 * (g.nq > p.nq ? g.nq : p.nq) * W) {}
    void group(const LGroup& g, const T* mats, const T* vals, T* e) {
        const i64 nv = g.nq;
        T *s0r = buf.data(), *s0i = s0r + g.D * W, *re = s0i + g.D * W, *im = re + g.D * W;
        T *tre = im + g.D * W, *tim = tre + g.D * W, *are = amps.data(), *aim = are + 2 * nv * W;
        for (i64 w = 0; w < nv; ++w)
            chen_amps<T, W>(vals + w * W, are + 2 * w * W, aim + 2 * w * W, (T*)nullptr, (T*)nullptr);
        product_state<T, W>(are, aim, nv, s0r, s0i);
        for (i64 c = 0; c < g.G; ++c) {
            std::memcpy(re, s0r, sizeof(T) * g.D * W);
            std::memcpy(im, s0i, sizeof(T) * g.D * W);
            lgroup_forward<T, W>(g, mats, c, re, im, tre, tim);
            readout<T, W>(g, re, im, e + c * g.K * W);
        }
    }
    void gates(i64, const T* v, T* e) { group(gg, mg, v, e); }
    void process(i64, const T* u, T* pr) { group(gp, mp, u, pr); }
};

// the layered forwards' start (q: the pointers after the constants): the inputs checked, the
// matrices of from_weights groups built from their weights
template <typename T>
static int lprepare(const LDims& m, void** q) {
    if (const int bad = nonfinite((const T*)q[0], (const T*)q[1], (const T*)q[2], m.B * m.T * m.I, m.B * m.H))
        return bad;
    if (m.gg.from_weights) lgroup_matrices<T>(m.gg, (const T*)q[9], (T*)q[7]);
    if (m.gp.from_weights) lgroup_matrices<T>(m.gp, (const T*)q[10], (T*)q[8]);
    return 0;
}

// and the backwards' start and end: the matrices' gradients zeroed, then turned into the weights'
template <typename T>
static void lgrads_zero(const LDims& m, void** q) {
    std::memset(q[9], 0, sizeof(T) * m.gg.L * m.gg.nq * m.gg.G * 8);
    std::memset(q[10], 0, sizeof(T) * m.gp.L * m.gp.nq * m.gp.G * 8);
}

template <typename T>
static void lgrads_finish(const LDims& m, void** q) {
    if (m.gg.from_weights) lgroup_matrices_back<T>(m.gg, (const T*)q[11], (const T*)q[9], (T*)q[13]);
    if (m.gp.from_weights) lgroup_matrices_back<T>(m.gp, (const T*)q[12], (const T*)q[10], (T*)q[14]);
}

// p: consts (14), x, h0, c0, out, h_T, c_T, workspace, mats_gates, mats_proc, w_gates, w_proc
// (mats filled from the weights for from_weights groups)
template <typename T, int W>
static int lforward(const i64* d, void** p) {
    LDims m = read_ldims(d, p);
    void** q = p + 2 * LCONSTS;
    const T *x = (const T*)q[0], *h0 = (const T*)q[1], *c0 = (const T*)q[2];
    T *mg = (T*)q[7], *mp = (T*)q[8];
    if (const int bad = lprepare<T>(m, q)) return bad;
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_forward<T, W>(r, x, h0, c0, (T*)q[3], (T*)q[4], (T*)q[5], (T*)q[6],
                        [&]() { return LayeredEv<T, W>(m.gg, m.gp, mg, mp); });
    return 0;
}

// the gradient gv [nv][W] of one group's input values (vals [nv][W]) from its read-outs'
// gradients ge [G K][W], the gate-matrix gradients added to gm; bufs: 10 D W values
template <typename T, int W>
static void lgroup_grad(const LGroup& g, const T* mats, const T* vals, i64 nv, const T* ge, T* gv, T* gm,
                        T* amps, T* bufs, T* scratch) {
    const T* signs = (const T*)g.signs;
    const i64 D = g.D;
    T *are = amps, *aim = are + 2 * nv * W, *dre = aim + 2 * nv * W, *dim = dre + 2 * nv * W;
    T *s0r = bufs, *s0i = s0r + D * W, *re = s0i + D * W, *im = re + D * W, *lre = im + D * W;
    T *lim = lre + D * W, *l0r = lim + D * W, *l0i = l0r + D * W, *tre = l0i + D * W, *tim = tre + D * W;
    for (i64 w = 0; w < nv; ++w) chen_amps<T, W>(vals + w * W, are + 2 * w * W, aim + 2 * w * W, dre + 2 * w * W, dim + 2 * w * W);
    product_state<T, W>(are, aim, nv, s0r, s0i);
    std::memset(l0r, 0, sizeof(T) * D * W);
    std::memset(l0i, 0, sizeof(T) * D * W);
    for (i64 c = 0; c < g.G; ++c) {
        std::memcpy(re, s0r, sizeof(T) * D * W);
        std::memcpy(im, s0i, sizeof(T) * D * W);
        lgroup_forward<T, W>(g, mats, c, re, im, tre, tim);
        const T* gk = ge + c * g.K * W;
        for (i64 i = 0; i < D; ++i) {  // lam = 2 (sum_k g_k signs[i][k]) psi_i
            T o[W];
            for (int l = 0; l < W; ++l) o[l] = 0;
            for (i64 k = 0; k < g.K; ++k) {
                const T sg = 2 * signs[i * g.K + k];
#pragma omp simd
                for (int l = 0; l < W; ++l) o[l] += gk[k * W + l] * sg;
            }
#pragma omp simd
            for (int l = 0; l < W; ++l) { lre[i * W + l] = o[l] * re[i * W + l]; lim[i * W + l] = o[l] * im[i * W + l]; }
        }
        lgroup_backward<T, W>(g, mats, c, re, im, lre, lim, tre, tim, gm);
#pragma omp simd
        for (i64 i = 0; i < D * W; ++i) { l0r[i] += lre[i]; l0i[i] += lim[i]; }
    }
    product_back<T, W>(are, aim, dre, dim, nv, l0r, l0i, gv, scratch);
}

// its backward: one thread's scratch and share of the gate matrices' gradients (reduce() adds it)
template <typename T, int W>
struct LayeredBackEv {
    const LGroup &gg, &gp; const T *mg, *mp; T *gmg, *gmp;
    std::vector<T> amps, bufs, scratch, mine_g, mine_p;
    LayeredBackEv(const LGroup& g, const LGroup& p, const T* mg_, const T* mp_, T* gmg_, T* gmp_)
        : gg(g), gp(p), mg(mg_), mp(mp_), gmg(gmg_), gmp(gmp_), amps(8 * (g.nq > p.nq ? g.nq : p.nq) * W),
          bufs(10 * (g.D > p.D ? g.D : p.D) * W), scratch(6 * (g.D > p.D ? g.D : p.D) * W),
          mine_g(g.L * g.nq * g.G * 8, T(0)), mine_p(p.L * p.nq * p.G * 8, T(0)) {}
    void process_back(i64, const T* u, const T* g_p, T* gu) {
        lgroup_grad<T, W>(gp, mp, u, gp.nq, g_p, gu, mine_p.data(), amps.data(), bufs.data(), scratch.data());
    }
    void gates_back(i64, const T* v, const T* ge, T* gv) {
        lgroup_grad<T, W>(gg, mg, v, gg.nq, ge, gv, mine_g.data(), amps.data(), bufs.data(), scratch.data());
    }
    void end_group() {}
    void finish() {}
    void reduce() {
        for (size_t i = 0; i < mine_g.size(); ++i) gmg[i] += mine_g[i];
        for (size_t i = 0; i < mine_p.size(); ++i) gmp[i] += mine_p[i];
    }
};

// p: consts (14), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, mats_gates, mats_proc, g_mats_gates,
// g_mats_proc (written), w_gates, w_proc, g_w_gates, g_w_proc (from_weights groups: written)
template <typename T, int W>
static int lbackward(const i64* d, void** p) {
    LDims m = read_ldims(d, p);
    void** q = p + 2 * LCONSTS;
    const T *mg = (const T*)q[7], *mp = (const T*)q[8];
    T *gmg = (T*)q[9], *gmp = (T*)q[10];
    lgrads_zero<T>(m, q);
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_backward<T, W>(r, (const T*)q[0], (const T*)q[1], (const T*)q[2], (const T*)q[3], (T*)q[4], (T*)q[5],
                         (T*)q[6], [&]() { return LayeredBackEv<T, W>(m.gg, m.gp, mg, mp, gmg, gmp); });
    lgrads_finish<T>(m, q);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The Heisenberg recurrence with W samples per vector lane group (amplitude/feature a of lane l at
// a * W + l), for large batches: every operation is then one vector operation over the lanes,
// the transfer rows' entries broadcast. Same numbers as forward / backward above (tested).

// e[j][W] = sum_a rows[j][a] f[a][W] for j < nr, four rows at a time
template <typename T, int W>
static void dots_lanes_any(const T* f, const T* rows, i64 nr, i64 D, T* e) {
    i64 j = 0;
    for (; j + 4 <= nr; j += 4) {
        T s0[W], s1[W], s2[W], s3[W];
        for (int l = 0; l < W; ++l) { s0[l] = 0; s1[l] = 0; s2[l] = 0; s3[l] = 0; }
        const T *r0 = rows + j * D, *r1 = r0 + D, *r2 = r1 + D, *r3 = r2 + D;
        for (i64 a = 0; a < D; ++a) {
            const T* fa = f + a * W;
            const T c0 = r0[a], c1 = r1[a], c2 = r2[a], c3 = r3[a];
#pragma omp simd
            for (int l = 0; l < W; ++l) {
                s0[l] += c0 * fa[l]; s1[l] += c1 * fa[l]; s2[l] += c2 * fa[l]; s3[l] += c3 * fa[l];
            }
        }
        for (int l = 0; l < W; ++l) {
            e[j * W + l] = s0[l]; e[(j + 1) * W + l] = s1[l]; e[(j + 2) * W + l] = s2[l]; e[(j + 3) * W + l] = s3[l];
        }
    }
    for (; j < nr; ++j) {
        T s0[W];
        for (int l = 0; l < W; ++l) s0[l] = 0;
        const T* r0 = rows + j * D;
        for (i64 a = 0; a < D; ++a) {
            const T* fa = f + a * W;
            const T c0 = r0[a];
#pragma omp simd
            for (int l = 0; l < W; ++l) s0[l] += c0 * fa[l];
        }
        for (int l = 0; l < W; ++l) e[j * W + l] = s0[l];
    }
}

// gf[a][W] = sum_j rows[j][a] ge[j][W]
template <typename T, int W>
static void combine_lanes_any(const T* ge, const T* rows, i64 nr, i64 D, T* gf) {
    for (i64 a = 0; a < D; ++a) {
        T s[W];
        for (int l = 0; l < W; ++l) s[l] = 0;
        for (i64 j = 0; j < nr; ++j) {
            const T c = rows[j * D + a];
            const T* gj = ge + j * W;
#pragma omp simd
            for (int l = 0; l < W; ++l) s[l] += c * gj[l];
        }
        for (int l = 0; l < W; ++l) gf[a * W + l] = s[l];
    }
}

// dots_lanes and combine_lanes for a row count NR known at compile time: every row's accumulator
// (dots) or read-out gradient (combine) stays in a register across the pass over the features
template <typename T, int W, int NR>
static void dots_fixed(const T* f, const T* rows, i64 D, T* e) {
    T s[NR][W];
    for (int j = 0; j < NR; ++j)
        for (int l = 0; l < W; ++l) s[j][l] = 0;
    for (i64 a = 0; a < D; ++a) {
        const T* fa = f + a * W;
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
            const T c = rows[j * D + a];
#pragma omp simd
            for (int l = 0; l < W; ++l) s[j][l] += c * fa[l];
        }
    }
    for (int j = 0; j < NR; ++j)
        for (int l = 0; l < W; ++l) e[j * W + l] = s[j][l];
}

template <typename T, int W, int NR>
static void combine_fixed(const T* ge, const T* rows, i64 D, T* gf) {
    if constexpr (W > 1) {  // the read-out gradients in registers, four features at a time
        QLSTM_LANE_VECTOR(V, T, W);
        V g[NR];
        for (int j = 0; j < NR; ++j) g[j] = ((const V*)ge)[j];
        V* out = (V*)gf;
        i64 a = 0;
        for (; a + 4 <= D; a += 4) {
            V s0 = {}, s1 = {}, s2 = {}, s3 = {};
#pragma GCC unroll 16
            for (int j = 0; j < NR; ++j) {
                const T* r = rows + j * D + a;
                s0 += r[0] * g[j]; s1 += r[1] * g[j]; s2 += r[2] * g[j]; s3 += r[3] * g[j];
            }
            out[a] = s0; out[a + 1] = s1; out[a + 2] = s2; out[a + 3] = s3;
        }
        for (; a < D; ++a) {
            V s0 = {};
            for (int j = 0; j < NR; ++j) s0 += rows[j * D + a] * g[j];
            out[a] = s0;
        }
        return;
    }
    T g[NR][W];
    for (int j = 0; j < NR; ++j)
        for (int l = 0; l < W; ++l) g[j][l] = ge[j * W + l];
    for (i64 a = 0; a < D; ++a) {
        T s[W];
        for (int l = 0; l < W; ++l) s[l] = 0;
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
            const T c = rows[j * D + a];
#pragma omp simd
            for (int l = 0; l < W; ++l) s[l] += c * g[j][l];
        }
        for (int l = 0; l < W; ++l) gf[a * W + l] = s[l];
    }
}

// name<T, W>(in, rows, nr, D, out): fixed<T, W, nr>(in, rows, D, out) for the row counts with an
// instance (4, 6, 8, 12, 16), any<T, W>(in, rows, nr, D, out) for the others
#define QLSTM_ROWS_DISPATCH(name, fixed, any)                                  \
    template <typename T, int W>                                                \
    static void name(const T* in, const T* rows, i64 nr, i64 D, T* out) {       \
        switch (nr) {                                                           \
            case 4: return fixed<T, W, 4>(in, rows, D, out);                    \
            case 6: return fixed<T, W, 6>(in, rows, D, out);                    \
            case 8: return fixed<T, W, 8>(in, rows, D, out);                    \
            case 12: return fixed<T, W, 12>(in, rows, D, out);                  \
            case 16: return fixed<T, W, 16>(in, rows, D, out);                  \
        }                                                                       \
        any<T, W>(in, rows, nr, D, out);                                        \
    }

// dots_lanes(f, rows, nr, D, e): e[j][W] = sum_a rows[j][a] f[a][W] for j < nr
QLSTM_ROWS_DISPATCH(dots_lanes, dots_fixed, dots_lanes_any)
// combine_lanes(ge, rows, nr, D, gf): gf[a][W] = sum_j rows[j][a] ge[j][W]
QLSTM_ROWS_DISPATCH(combine_lanes, combine_fixed, combine_lanes_any)
#undef QLSTM_ROWS_DISPATCH

// acc[j][a] += sum_c sum_l g[c][j][l] f[c][a][l] over nc stored steps (f [nc][D][W], g [nc][R][W]):
// the transfer rows' gradients as one register-blocked product, JB rows by four features per block
// with the lanes kept apart in the accumulators and summed once at the end
template <typename T, int W, int JB>
static inline void rows_grad_block(const T* f, const T* g, i64 nc, i64 R, i64 D, i64 j0, i64 a0, T* acc) {
    T s[JB][4][W];
    for (int jj = 0; jj < JB; ++jj)
        for (int aa = 0; aa < 4; ++aa)
            for (int l = 0; l < W; ++l) s[jj][aa][l] = 0;
    for (i64 c = 0; c < nc; ++c) {
        const T* fc = f + (c * D + a0) * W;
        const T* gc = g + (c * R + j0) * W;
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; ++jj)
#pragma GCC unroll 4
            for (int aa = 0; aa < 4; ++aa)
#pragma omp simd
                for (int l = 0; l < W; ++l) s[jj][aa][l] += gc[jj * W + l] * fc[aa * W + l];
    }
    for (int jj = 0; jj < JB; ++jj)
        for (int aa = 0; aa < 4; ++aa) {
            T t = 0;
            for (int l = 0; l < W; ++l) t += s[jj][aa][l];
            acc[(j0 + jj) * D + a0 + aa] += t;
        }
}

// the same for one sample per step (W = 1: f [nc][D], g [nc][R]), vectorised over 16 features
template <typename T, int JB>
static inline void rows_grad_block1(const T* f, const T* g, i64 nc, i64 R, i64 D, i64 j0, i64 a0, T* acc) {
    T s[JB][16];
    for (int jj = 0; jj < JB; ++jj)
        for (int aa = 0; aa < 16; ++aa) s[jj][aa] = 0;
    for (i64 c = 0; c < nc; ++c) {
        const T* fc = f + c * D + a0;
#pragma GCC unroll 8
        for (int jj = 0; jj < JB; ++jj) {
            const T gj = g[c * R + j0 + jj];
#pragma omp simd
            for (int aa = 0; aa < 16; ++aa) s[jj][aa] += gj * fc[aa];
        }
    }
    for (int jj = 0; jj < JB; ++jj)
        for (int aa = 0; aa < 16; ++aa) acc[(j0 + jj) * D + a0 + aa] += s[jj][aa];
}

// The same product with the read-out gradients stored lanes outermost, eT [nc][W][RP] (rows padded
// to RP with zeros): acc[j][a] += sum_c sum_l eT[c][l][j] f[c][a][l], the rows a vector and AB
// features' accumulators in registers, so the lanes need no sum at the end (where rows_grad_block
// spends as long summing its accumulators' lanes as multiplying)
template <typename T, int W, int RP>
static void rows_grad_t(const T* f, const T* eT, i64 nc, i64 R, i64 D, T* acc) {
    QLSTM_LANE_VECTOR(VR, T, RP);
    constexpr int AB = 16;
    const VR* E = (const VR*)eT;
    for (i64 a0 = 0; a0 < D; a0 += AB) {  // D = 4**n >= 16 here: whole blocks
        VR s[AB];
        for (int aa = 0; aa < AB; ++aa) s[aa] = VR{};
        for (i64 c = 0; c < nc; ++c) {
            const T* fc = f + (c * D + a0) * W;
            for (int l = 0; l < W; ++l) {
                const VR e = E[c * W + l];
#pragma GCC unroll 16
                for (int aa = 0; aa < AB; ++aa) s[aa] += fc[aa * W + l] * e;
            }
        }
        for (int aa = 0; aa < AB; ++aa)
            for (i64 j = 0; j < R; ++j) acc[j * D + a0 + aa] += s[aa][j];
    }
}

// the padded row count rows_grad_t takes for R rows of T on W lanes, or 0 where rows_grad serves
// (one lane; fewer than 16 features; a rows vector wider than 64 bytes, which the compilers keep
// in memory)
template <typename T, int W>
static constexpr i64 transposed_rows(i64 R, i64 D) {
    const i64 rp = R <= 8 ? 8 : 16;
    return W > 1 && D >= 16 && R <= 16 && rp * i64(sizeof(T)) <= 64 ? rp : 0;
}

template <typename T, int W>
static void rows_grad(const T* f, const T* g, i64 nc, i64 R, i64 D, T* acc) {
    if (nc == 0) return;
    if (W == 1 && D < 16) {  // one or two qubits: plain loops
        for (i64 c = 0; c < nc; ++c)
            for (i64 j = 0; j < R; ++j) axpy<T>(g[c * R + j], f + c * D, acc + j * D, D);
        return;
    }
    const i64 step = W == 1 ? 16 : 4;  // D = 4**n: a multiple of both from here on
    for (i64 a0 = 0; a0 < D; a0 += step) {
        i64 j0 = 0;
        if (W == 1) {
            for (; j0 + 6 <= R; j0 += 6) rows_grad_block1<T, 6>(f, g, nc, R, D, j0, a0, acc);
            for (; j0 + 2 <= R; j0 += 2) rows_grad_block1<T, 2>(f, g, nc, R, D, j0, a0, acc);
            for (; j0 < R; ++j0) rows_grad_block1<T, 1>(f, g, nc, R, D, j0, a0, acc);
        } else {
            for (; j0 + 4 <= R; j0 += 4) rows_grad_block<T, W, 4>(f, g, nc, R, D, j0, a0, acc);
            for (; j0 + 2 <= R; j0 += 2) rows_grad_block<T, W, 2>(f, g, nc, R, D, j0, a0, acc);
            for (; j0 < R; ++j0) rows_grad_block<T, W, 1>(f, g, nc, R, D, j0, a0, acc);
        }
    }
}

// The Heisenberg form's evaluation of both VQC groups on W lanes (the group's own sizes: its
// qubits take its inputs, its rows are its read-outs)
template <typename T, int W>
struct HeisEv {
    const Dims& m; const T *rows_g, *rows_p;
    std::vector<T> f, q;
    HeisEv(const Dims& m_, const T* rg, const T* rp)
        : m(m_), rows_g(rg), rows_p(rp), f((m_.Dg > m_.Dp ? m_.Dg : m_.Dp) * W), q(4 * W) {}
    void gates(i64, const T* v, T* e) {
        features_lanes<T, W>(v, m.gg.nq, f.data(), q.data());
        dots_lanes<T, W>(f.data(), rows_g, m.gg.R, m.Dg, e);
    }
    void process(i64, const T* u, T* pr) {
        features_lanes<T, W>(u, m.gp.nq, f.data(), q.data());
        dots_lanes<T, W>(f.data(), rows_p, m.gp.R, m.Dp, pr);
    }
};

// its backward: the features and read-out gradients of every step kept (up to cap steps, about
// 256 kB in float32) and turned into the rows' gradients by one product (rows_grad) per cap steps,
// into the thread's share; reduce() adds the shares
template <typename T, int W>
struct HeisBackEv {
    // one group's stored steps and share of the rows' gradients
    struct Stash {
        i64 nq, D, R, RP, cap, n = 0;  // RP: rows_grad_t's padded rows (0: rows_grad's layout)
        const T* rows;
        std::unique_ptr<T[]> f;  // uninitialised: written before it is read
        std::vector<T> e;        // [cap][R][W], or [cap][W][RP] with the padding zero
        std::vector<T> acc;
        Stash(const Group& g, const T* rows_)
            : nq(g.nq), D(g.D), R(g.R), RP(transposed_rows<T, W>(g.R, g.D)), cap(std::max<i64>(1, 65536 / (g.D * W))),
              rows(rows_), f(new T[cap * g.D * W]), e(cap * (RP ? RP : g.R) * W, T(0)), acc(g.R * g.D, T(0)) {}
        void flush() {
            if (RP == 16) rows_grad_t<T, W, 16>(f.get(), e.data(), n, R, D, acc.data());
            else if (RP == 8) rows_grad_t<T, W, 8>(f.get(), e.data(), n, R, D, acc.data());
            else rows_grad<T, W>(f.get(), e.data(), n, R, D, acc.data());
            n = 0;
        }
        // gv [nq][W] from the read-outs' gradient ge [R][W] at the values v [nq][W]; the step stored
        void back(const T* v, const T* ge, T* gv, T* q, T* gf, T* scratch) {
            if (n == cap) flush();
            T* fs = f.get() + n * D * W;
            if (RP) {
                T* et = e.data() + n * W * RP;
                for (i64 j = 0; j < R; ++j)
                    for (int l = 0; l < W; ++l) et[l * RP + j] = ge[j * W + l];
            } else {
                std::memcpy(e.data() + n * R * W, ge, sizeof(T) * R * W);
            }
            ++n;
            features_lanes<T, W>(v, nq, fs, q);
            combine_lanes<T, W>(ge, rows, R, D, gf);
            features_back_lanes<T, W>(v, nq, gf, gv, scratch);
        }
    };
    T *grows_g, *grows_p;
    Stash sg, sp;
    std::vector<T> q, gf, scratch;
    HeisBackEv(const Dims& m, const T* rg, const T* rp, T* gg, T* gp)
        : grows_g(gg), grows_p(gp), sg(m.gg, rg), sp(m.gp, rp), q(4 * W), gf((m.Dg > m.Dp ? m.Dg : m.Dp) * W),
          scratch(3 * (m.Dg > m.Dp ? m.Dg : m.Dp) * W + 4 * (m.gg.nq > m.gp.nq ? m.gg.nq : m.gp.nq) * W) {}
    void process_back(i64, const T* u, const T* gp, T* gu) { sp.back(u, gp, gu, q.data(), gf.data(), scratch.data()); }
    void gates_back(i64, const T* v, const T* ge, T* gv) { sg.back(v, ge, gv, q.data(), gf.data(), scratch.data()); }
    void end_group() {}
    void finish() { sg.flush(); sp.flush(); }
    void reduce() {
        for (size_t i = 0; i < sg.acc.size(); ++i) grows_g[i] += sg.acc[i];
        for (size_t i = 0; i < sp.acc.size(); ++i) grows_p[i] += sp.acc[i];
    }
};

// as forward (same pointers), W samples at a time
template <typename T, int W>
static int hforward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *x = (const T*)p[12], *h0 = (const T*)p[13], *c0 = (const T*)p[14];
    T* ws = (T*)p[18];
    if (const int bad = nonfinite(x, h0, c0, m.B * m.T * m.I, m.B * m.H)) return bad;
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_forward<T, W>(r, x, h0, c0, (T*)p[15], (T*)p[16], (T*)p[17], ws + m.off_steps,
                        [&]() { return HeisEv<T, W>(m, rows_g, rows_p); });
    return 0;
}

// as backward (same pointers), W samples at a time
template <typename T, int W>
static int hbackward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T* ws = (const T*)p[12];
    T *grows_g = (T*)p[19], *grows_p = (T*)p[20];
    std::memset(grows_g, 0, sizeof(T) * m.gg.R * m.Dg);
    std::memset(grows_p, 0, sizeof(T) * m.gp.R * m.Dp);
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_backward<T, W>(r, ws + m.off_steps, (const T*)p[13], (const T*)p[14], (const T*)p[15], (T*)p[16], (T*)p[17],
                         (T*)p[18], [&]() { return HeisBackEv<T, W>(m, rows_g, rows_p, grows_g, grows_p); });
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Adapter mode: linear maps around the VQCs (qlstm/models/_fused_adapter.py), per step
//   z = Wg v + bg, e_c = VQC_c(z) (c = 0..3), g_c = e_c Out_c + o_c;  z' = Wp u + bp,
//   e'_c = VQC_(4+c)(z'), [h, y] = e'_c Out_(4+c) + o_(4+c)
// with the VQCs of the inner evaluator (nq qubits, nq read-outs per copy).
// The linear parameters: lin = {Wg [nq][n], bg [nq], Wp [nq][H], bp [nq], Out [6][nq][H], o [6][H]}.

template <typename T>
struct Linear {
    const T *wg, *bg, *wp, *bp, *out, *ob;
};

// y[r][W] = W x + b for W [rows][cols]
template <typename T, int W>
static void affine_lanes(const T* w, const T* b, const T* x, i64 rows, i64 cols, T* y) {
    for (i64 r = 0; r < rows; ++r) {
        T s[W];
        for (int l = 0; l < W; ++l) s[l] = b[r];
        for (i64 c = 0; c < cols; ++c) {
            const T a = w[r * cols + c];
#pragma omp simd
            for (int l = 0; l < W; ++l) s[l] += a * x[c * W + l];
        }
        for (int l = 0; l < W; ++l) y[r * W + l] = s[l];
    }
}

// g[c H + k][W] = o[c][k] + sum_j e[c nq + j] Out[c][j][k] for copies c0 .. c0 + G - 1
template <typename T, int W>
static void readout_map(const T* out, const T* ob, const T* e, i64 c0, i64 G, i64 nq, i64 H, T* g) {
    for (i64 c = 0; c < G; ++c)
        for (i64 k = 0; k < H; ++k) {
            T s[W];
            for (int l = 0; l < W; ++l) s[l] = ob[(c0 + c) * H + k];
            for (i64 j = 0; j < nq; ++j) {
                const T a = out[((c0 + c) * nq + j) * H + k];
#pragma omp simd
                for (int l = 0; l < W; ++l) s[l] += a * e[(c * nq + j) * W + l];
            }
            for (int l = 0; l < W; ++l) g[(c * H + k) * W + l] = s[l];
        }
}

// sizes of the adapter: nq qubits (each VQC copy reads nq values and returns nq), n = I + H, H
struct ASizes {
    i64 nq, n, H;
};

template <typename T, int W, class Inner>
struct AdapterEv {
    ASizes a; Linear<T> lin; Inner inner;
    std::vector<T> z, e;
    AdapterEv(ASizes a_, Linear<T> l, Inner in) : a(a_), lin(l), inner(std::move(in)), z(a_.nq * W), e(4 * a_.nq * W) {}
    void gates(i64 t, const T* v, T* g) {
        affine_lanes<T, W>(lin.wg, lin.bg, v, a.nq, a.n, z.data());
        inner.gates(t, z.data(), e.data());
        readout_map<T, W>(lin.out, lin.ob, e.data(), 0, 4, a.nq, a.H, g);
    }
    void process(i64 t, const T* u, T* pr) {
        affine_lanes<T, W>(lin.wp, lin.bp, u, a.nq, a.H, z.data());
        inner.process(t, z.data(), e.data());
        readout_map<T, W>(lin.out, lin.ob, e.data(), 4, 2, a.nq, a.H, pr);
    }
};

template <typename T, int W, class Fwd, class Back>
struct AdapterBackEv {
    ASizes a; Linear<T> lin; Linear<T> grad;  // grad: the thread's share, reduce() adds it to gl_out
    T* gl_out[6];
    Fwd fwd;    // recomputes the VQCs' read-outs
    Back inner;  // the VQCs' backward
    std::vector<T> z, e, ge_vqc, gz, mine;
    i64 sizes[6];
    AdapterBackEv(ASizes a_, Linear<T> l, T* const* gl, Fwd f, Back b)
        : a(a_), lin(l), fwd(std::move(f)), inner(std::move(b)), z(a_.nq * W), e(4 * a_.nq * W),
          ge_vqc(4 * a_.nq * W), gz(a_.nq * W) {
        const i64 nq = a.nq, H = a.H;
        const i64 sz[6] = {nq * a.n, nq, nq * H, nq, 6 * nq * H, 6 * H};
        i64 total = 0;
        for (int k = 0; k < 6; ++k) { sizes[k] = sz[k]; total += sz[k]; gl_out[k] = gl[k]; }
        mine.assign(total, T(0));
        T* q = mine.data();
        T* parts[6];
        for (int k = 0; k < 6; ++k) { parts[k] = q; q += sz[k]; }
        grad = Linear<T>{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]};
    }
    // one group: values x [cols][W] -> z = A x + b -> VQC copies c0.. -> read-out map; gradient in
    void group_back(i64 t, bool gates, const T* x, i64 cols, const T* gout, T* gx) {
        const i64 nq = a.nq, H = a.H, G = gates ? 4 : 2, c0 = gates ? 0 : 4;
        const T *A = gates ? lin.wg : lin.wp, *b = gates ? lin.bg : lin.bp;
        T *gA = (T*)(gates ? grad.wg : grad.wp), *gb = (T*)(gates ? grad.bg : grad.bp);
        affine_lanes<T, W>(A, b, x, nq, cols, z.data());
        if (gates) fwd.gates(t, z.data(), e.data()); else fwd.process(t, z.data(), e.data());
        T *gOut = (T*)grad.out, *go = (T*)grad.ob;
        for (i64 c = 0; c < G; ++c)
            for (i64 j = 0; j < nq; ++j) {
                T s[W];
                for (int l = 0; l < W; ++l) s[l] = 0;
                for (i64 k = 0; k < H; ++k) {
                    const T w = lin.out[((c0 + c) * nq + j) * H + k];
                    const T *gk = gout + (c * H + k) * W, *ej = e.data() + (c * nq + j) * W;
                    T acc = 0;
                    for (int l = 0; l < W; ++l) { s[l] += w * gk[l]; acc += ej[l] * gk[l]; }
                    gOut[((c0 + c) * nq + j) * H + k] += acc;
                }
                for (int l = 0; l < W; ++l) ge_vqc[(c * nq + j) * W + l] = s[l];
            }
        for (i64 c = 0; c < G; ++c)
            for (i64 k = 0; k < H; ++k) {
                T acc = 0;
                for (int l = 0; l < W; ++l) acc += gout[(c * H + k) * W + l];
                go[(c0 + c) * H + k] += acc;
            }
        if (gates) inner.gates_back(t, z.data(), ge_vqc.data(), gz.data());
        else inner.process_back(t, z.data(), ge_vqc.data(), gz.data());
        for (i64 r = 0; r < nq; ++r) {
            T accb = 0;
            for (int l = 0; l < W; ++l) accb += gz[r * W + l];
            gb[r] += accb;
            for (i64 c = 0; c < cols; ++c) {
                T acc = 0;
                for (int l = 0; l < W; ++l) acc += gz[r * W + l] * x[c * W + l];
                gA[r * cols + c] += acc;
            }
        }
        for (i64 c = 0; c < cols; ++c) {
            T s[W];
            for (int l = 0; l < W; ++l) s[l] = 0;
            for (i64 r = 0; r < nq; ++r) {
                const T w = A[r * cols + c];
#pragma omp simd
                for (int l = 0; l < W; ++l) s[l] += w * gz[r * W + l];
            }
            for (int l = 0; l < W; ++l) gx[c * W + l] = s[l];
        }
    }
    void process_back(i64 t, const T* u, const T* gp, T* gu) { group_back(t, false, u, a.H, gp, gu); }
    void gates_back(i64 t, const T* v, const T* ge, T* gv) { group_back(t, true, v, a.n, ge, gv); }
    void end_group() { inner.end_group(); }
    void finish() { inner.finish(); }
    void reduce() {
        inner.reduce();
        const T* q = mine.data();
        for (int k = 0; k < 6; ++k)
            for (i64 i = 0; i < sizes[k]; ++i) gl_out[k][i] += *q++;
    }
};

// the linear parameters' gradient buffers p[0..5], zeroed
template <typename T>
static void zero_linear_grads(void** p, ASizes a) {
    const i64 sz[6] = {a.nq * a.n, a.nq, a.nq * a.H, a.nq, 6 * a.nq * a.H, 6 * a.H};
    for (int k = 0; k < 6; ++k) std::memset(p[k], 0, sizeof(T) * sz[k]);
}

template <typename T>
static Linear<T> read_linear(void** p) {
    return Linear<T>{(const T*)p[0], (const T*)p[1], (const T*)p[2], (const T*)p[3], (const T*)p[4], (const T*)p[5]};
}

// p: consts (12), x, h0, c0, out, h_T, c_T, workspace, w_vqc [6][nw], then Wg, bg, Wp, bp, Out, o.
// d as the Heisenberg form's, with both groups on the adapter's nq qubits (G = 4 and 2, K = nq)
template <typename T, int W>
static int aforward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T *x = (const T*)p[12], *h0 = (const T*)p[13], *c0 = (const T*)p[14];
    T* ws = (T*)p[18];
    const T* wv = (const T*)p[19];
    if (const int bad = nonfinite(x, h0, c0, m.B * m.T * m.I, m.B * m.H)) return bad;
    void* tp[15];
    for (int k = 0; k < 12; ++k) tp[k] = p[k];
    tp[12] = (void*)wv; tp[13] = (void*)(wv + 4 * m.gg.nw); tp[14] = ws;
    tables<T>(d, tp);
    const Linear<T> lin = read_linear<T>(p + 20);
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
    const ASizes a{m.gg.nq, m.n, m.H};
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_forward<T, W>(r, x, h0, c0, (T*)p[15], (T*)p[16], (T*)p[17], ws + m.off_steps, [&]() {
        return AdapterEv<T, W, HeisEv<T, W>>(a, lin, HeisEv<T, W>(m, rows_g, rows_p));
    });
    return 0;
}

// p: consts (12), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, grows_gates, grows_proc, w_vqc,
// g_w_vqc, then Wg, bg, Wp, bp, Out, o, and their gradients (written)
template <typename T, int W>
static int abackward(const i64* d, void** p) {
    Dims m = read_dims(d, p);
    const T* ws = (const T*)p[12];
    T *grows_g = (T*)p[19], *grows_p = (T*)p[20];
    const T* wv = (const T*)p[21];
    T* gwv = (T*)p[22];
    std::memset(grows_g, 0, sizeof(T) * m.gg.R * m.Dg);
    std::memset(grows_p, 0, sizeof(T) * m.gp.R * m.Dp);
    const Linear<T> lin = read_linear<T>(p + 23);
    const ASizes a{m.gg.nq, m.n, m.H};
    zero_linear_grads<T>(p + 29, a);
    T* const* gl = (T* const*)(p + 29);
    const T* rows_g = rows_of<T>(m.gg, ws);
    const T* rows_p = rows_of<T>(m.gp, ws + m.off_gp);
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_backward<T, W>(r, ws + m.off_steps, (const T*)p[13], (const T*)p[14], (const T*)p[15], (T*)p[16], (T*)p[17],
                         (T*)p[18], [&]() {
        return AdapterBackEv<T, W, HeisEv<T, W>, HeisBackEv<T, W>>(
            a, lin, gl, HeisEv<T, W>(m, rows_g, rows_p), HeisBackEv<T, W>(m, rows_g, rows_p, grows_g, grows_p));
    });
    void* tp[19];
    for (int k = 0; k < 12; ++k) tp[k] = p[k];
    tp[12] = (void*)ws; tp[13] = (void*)wv; tp[14] = (void*)(wv + 4 * m.gg.nw);
    tp[15] = gwv; tp[16] = gwv + 4 * m.gg.nw; tp[17] = grows_g; tp[18] = grows_p;
    return tables_backward<T>(d, tp);
}

// Adapter mode with the VQCs in the layered form. p: consts (14), x, h0, c0, out, h_T, c_T,
// workspace, mats_gates, mats_proc, w_gates, w_proc (as lforward), then Wg, bg, Wp, bp, Out, o
template <typename T, int W>
static int laforward(const i64* d, void** p) {
    LDims m = read_ldims(d, p);
    void** q = p + 2 * LCONSTS;
    const T *x = (const T*)q[0], *h0 = (const T*)q[1], *c0 = (const T*)q[2];
    T *mg = (T*)q[7], *mp = (T*)q[8];
    if (const int bad = lprepare<T>(m, q)) return bad;
    const Linear<T> lin = read_linear<T>(q + 11);
    const ASizes a{m.gg.nq, m.n, m.H};
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_forward<T, W>(r, x, h0, c0, (T*)q[3], (T*)q[4], (T*)q[5], (T*)q[6], [&]() {
        return AdapterEv<T, W, LayeredEv<T, W>>(a, lin, LayeredEv<T, W>(m.gg, m.gp, mg, mp));
    });
    return 0;
}

// p: consts (14), then as lbackward (15), then Wg, bg, Wp, bp, Out, o, and their gradients
template <typename T, int W>
static int labackward(const i64* d, void** p) {
    LDims m = read_ldims(d, p);
    void** q = p + 2 * LCONSTS;
    const T *mg = (const T*)q[7], *mp = (const T*)q[8];
    T *gmg = (T*)q[9], *gmp = (T*)q[10];
    lgrads_zero<T>(m, q);
    const Linear<T> lin = read_linear<T>(q + 15);
    const ASizes a{m.gg.nq, m.n, m.H};
    zero_linear_grads<T>(q + 21, a);
    T* const* gl = (T* const*)(q + 21);
    Rec r{m.B, m.T, m.I, m.H, m.n, m.per_step};
    lanes_backward<T, W>(r, (const T*)q[0], (const T*)q[1], (const T*)q[2], (const T*)q[3], (T*)q[4], (T*)q[5],
                         (T*)q[6], [&]() {
        return AdapterBackEv<T, W, LayeredEv<T, W>, LayeredBackEv<T, W>>(
            a, lin, gl, LayeredEv<T, W>(m.gg, m.gp, mg, mp), LayeredBackEv<T, W>(m.gg, m.gp, mg, mp, gmg, gmp));
    });
    lgrads_finish<T>(m, q);
    return 0;
}

// name<T>(d, p): lanes<T, W>(d, p) for the lane width W = d[16] (4, 8 or 16), else one<T>(d, p),
// one sample at a time
#define QLSTM_HEIS_DISPATCH(name, lanes, one)         \
    template <typename T>                             \
    static int name(const i64* d, void** p) {         \
        switch (d[16]) {                              \
            case 4: return lanes<T, 4>(d, p);         \
            case 8: return lanes<T, 8>(d, p);         \
            case 16: return lanes<T, 16>(d, p);       \
        }                                             \
        return one<T>(d, p);                          \
    }

QLSTM_HEIS_DISPATCH(hforward_any, hforward, forward)
QLSTM_HEIS_DISPATCH(hbackward_any, hbackward, backward)
#undef QLSTM_HEIS_DISPATCH

// name<T>(d, p): fn<T, W>(d, p) for the lane width W = d[k] (1, 4, 8 or 16; -1 for another)
#define QLSTM_LANE_DISPATCH(name, fn, k)                   \
    template <typename T>                                  \
    static int name(const i64* d, void** p) {              \
        switch (d[k]) {                                    \
            case 1: return fn<T, 1>(d, p);                 \
            case 4: return fn<T, 4>(d, p);                 \
            case 8: return fn<T, 8>(d, p);                 \
            case 16: return fn<T, 16>(d, p);               \
        }                                                  \
        return -1;                                         \
    }

QLSTM_LANE_DISPATCH(lforward_any, lforward, 20)
QLSTM_LANE_DISPATCH(lbackward_any, lbackward, 20)
QLSTM_LANE_DISPATCH(aforward_any, aforward, 16)
QLSTM_LANE_DISPATCH(abackward_any, abackward, 16)
QLSTM_LANE_DISPATCH(laforward_any, laforward, 20)
QLSTM_LANE_DISPATCH(labackward_any, labackward, 20)

// the whole forward: p = consts (12), x, h0, c0, out, h_T, c_T, workspace, w_gates, w_proc
template <typename T>
static int step_forward(const i64* d, void** p) {
    void* tp[15];
    for (int k = 0; k < 12; ++k) tp[k] = p[k];
    tp[12] = p[19]; tp[13] = p[20]; tp[14] = p[18];
    tables<T>(d, tp);
    return hforward_any<T>(d, p);
}

// the whole backward: p = consts (12), workspace, g_out, g_h, g_c, g_x, g_h0, g_c0, grows_gates,
// grows_proc, w_gates, w_proc, g_w_gates, g_w_proc
template <typename T>
static int step_backward(const i64* d, void** p) {
    hbackward_any<T>(d, p);
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

// the layered form: d = B, T, I, H, (nq, G, K, L, S, nw, M, from_weights) x 2, W (lanes: 1, 4, 8 or
// 16); the workspace: T * B * (n + 7 H) values; returns 1, 2, 3 for a non-finite x, h0, c0, -1 for
// an unsupported W
int qlstm_adapter_forward_f32(const int64_t* d, void** p) { return aforward_any<float>(d, p); }
int qlstm_adapter_forward_f64(const int64_t* d, void** p) { return aforward_any<double>(d, p); }
int qlstm_adapter_backward_f32(const int64_t* d, void** p) { return abackward_any<float>(d, p); }
int qlstm_adapter_backward_f64(const int64_t* d, void** p) { return abackward_any<double>(d, p); }

int qlstm_layered_adapter_forward_f32(const int64_t* d, void** p) { return laforward_any<float>(d, p); }
int qlstm_layered_adapter_forward_f64(const int64_t* d, void** p) { return laforward_any<double>(d, p); }
int qlstm_layered_adapter_backward_f32(const int64_t* d, void** p) { return labackward_any<float>(d, p); }
int qlstm_layered_adapter_backward_f64(const int64_t* d, void** p) { return labackward_any<double>(d, p); }

int qlstm_layered_forward_f32(const int64_t* d, void** p) { return lforward_any<float>(d, p); }
int qlstm_layered_forward_f64(const int64_t* d, void** p) { return lforward_any<double>(d, p); }
int qlstm_layered_backward_f32(const int64_t* d, void** p) { return lbackward_any<float>(d, p); }
int qlstm_layered_backward_f64(const int64_t* d, void** p) { return lbackward_any<double>(d, p); }
}
