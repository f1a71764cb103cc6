// StableMax cross-entropy, one thread block per row (refimpl/losses/stablemax.py).
//
// s(v) = max(v, 0) + 1 / (1 - min(v, 0)) is evaluated branch-free: no warp divergence and
// no unused branch that could overflow (the official code's 1/(1 - v + 1e-30) at v = 1).
// Forward: total_i = sum_j s(z_ij) (tree reduction in double),
//          loss_i = log(total_i) - sign(z_iy) * log1p(|z_iy|).
// Backward: g_z_ij = scale_i * (s(z_ij) / total_i - [j == y_i]) / (1 + |z_ij|).
//           with s(v)/(1 + |v|) = t^2, t = 1/(1 - min(v, 0)).

template <typename T>
__device__ T stablemax_s(T v) {
    const T zero = T(0), one = T(1);
    return (v > zero ? v : zero) + one / (one - (v < zero ? v : zero));
}

__device__ double block_sum_double(double value, double* shared) {
    for (int offset = 16; offset > 0; offset >>= 1)
        value += __shfl_down_sync(0xffffffffu, value, offset);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    value = (threadIdx.x < warps) ? shared[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int offset = 16; offset > 0; offset >>= 1)
            value += __shfl_down_sync(0xffffffffu, value, offset);
        if (lane == 0) shared[0] = value;
    }
    __syncthreads();
    const double total = shared[0];
    __syncthreads();
    return total;
}

template <typename T>
__device__ void cross_entropy_row(const T* z, const long long* y, long long k, double* loss, double* total_s) {
    __shared__ double shared[32];
    const long long row = blockIdx.x;
    const T* zr = z + row * k;
    double sum = 0;
    for (long long j = threadIdx.x; j < k; j += blockDim.x) sum += double(stablemax_s<T>(zr[j]));
    const double total = block_sum_double(sum, shared);
    if (threadIdx.x == 0) {
        const double label_logit = double(zr[y[row]]);
        const double sign = label_logit > 0 ? 1.0 : (label_logit < 0 ? -1.0 : 0.0);
        loss[row] = log(total) - sign * log1p(fabs(label_logit));
        total_s[row] = total;
    }
}

template <typename T>
__device__ void cross_entropy_grad_row(const T* z, const long long* y, const double* total_s,
                                       const double* scale, long long k, T* g_z) {
    const long long row = blockIdx.x;
    const T* zr = z + row * k;
    T* out = g_z + row * k;
    const T inverse = T(scale[row] / total_s[row]);
    const T row_scale = T(scale[row]);
    const long long label = y[row];
    for (long long j = threadIdx.x; j < k; j += blockDim.x) {
        const T v = zr[j];
        // s(v)/(1 + |v|) is 1 for v >= 0 and 1/(1 - v)^2 for v < 0: t^2 with one division
        const T t = T(1) / (T(1) - (v < T(0) ? v : T(0)));
        T g = inverse * (t * t);
        if (j == label) g -= row_scale / (T(1) + (v < T(0) ? -v : v));
        out[j] = g;
    }
}

extern "C" __global__ void stablemax_cross_entropy_forward_f32(const float* z, const long long* y, long long k, double* loss, double* total_s) {
    cross_entropy_row<float>(z, y, k, loss, total_s);
}
extern "C" __global__ void stablemax_cross_entropy_forward_f64(const double* z, const long long* y, long long k, double* loss, double* total_s) {
    cross_entropy_row<double>(z, y, k, loss, total_s);
}
extern "C" __global__ void stablemax_cross_entropy_backward_f32(const float* z, const long long* y, const double* total_s, const double* scale, long long k, float* g_z) {
    cross_entropy_grad_row<float>(z, y, total_s, scale, k, g_z);
}
extern "C" __global__ void stablemax_cross_entropy_backward_f64(const double* z, const long long* y, const double* total_s, const double* scale, long long k, double* g_z) {
    cross_entropy_grad_row<double>(z, y, total_s, scale, k, g_z);
}
