// Layer normalization, one thread block per row (refimpl/layers/layer_norm.py).
//
// Forward: two-pass row statistics (mean, then the mean of squared deviations) with a
// tree reduction in the accumulator type A (float for float rows, double for double rows),
// then y = gamma * (x - mean) * rstd + beta. Residuals: mean and rstd per row (as double).
// Backward (input): per row, mean(g*gamma) and mean(g*gamma*x_hat), then
// g_x = rstd * (g*gamma - mean(g*gamma) - x_hat * mean(g*gamma*x_hat)).
// Backward (parameters): each thread owns one column over a chunk of rows and adds its
// partial sums of g*x_hat and g into double buffers with one atomicAdd each.

template <typename A>
__device__ A block_sum(A value, A* shared) {
    for (int offset = 16; offset > 0; offset >>= 1)
        value += __shfl_down_sync(0xffffffffu, value, offset);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = value;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    value = (threadIdx.x < warps) ? shared[threadIdx.x] : A(0);
    if (warp == 0) {
        for (int offset = 16; offset > 0; offset >>= 1)
            value += __shfl_down_sync(0xffffffffu, value, offset);
        if (lane == 0) shared[0] = value;
    }
    __syncthreads();
    const A total = shared[0];
    __syncthreads();
    return total;
}

template <typename T, typename A>
__device__ void forward_row(const T* x, const T* gamma, const T* beta, double eps, long long d,
                            T* y, double* mean, double* rstd) {
    __shared__ A shared[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * d;
    T* yr = y + row * d;
    A sum = 0;
    for (long long j = threadIdx.x; j < d; j += blockDim.x) sum += A(xr[j]);
    const A mu = block_sum<A>(sum, shared) / A(d);
    A squares = 0;
    for (long long j = threadIdx.x; j < d; j += blockDim.x) {
        const A centered = A(xr[j]) - mu;
        squares += centered * centered;
    }
    const A variance = block_sum<A>(squares, shared) / A(d);
    const A r = A(1) / sqrt(variance + A(eps));
    for (long long j = threadIdx.x; j < d; j += blockDim.x)
        yr[j] = T(A(gamma[j]) * ((A(xr[j]) - mu) * r) + A(beta[j]));
    if (threadIdx.x == 0) {
        mean[row] = double(mu);
        rstd[row] = double(r);
    }
}

template <typename T, typename A>
__device__ void backward_row(const T* x, const double* mean, const double* rstd, const T* gamma,
                             const T* g_y, long long d, T* g_x) {
    __shared__ A shared[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * d;
    const T* gr = g_y + row * d;
    T* out = g_x + row * d;
    const A mu = A(mean[row]);
    const A r = A(rstd[row]);
    A sum_g = 0, sum_g_x_hat = 0;
    for (long long j = threadIdx.x; j < d; j += blockDim.x) {
        const A x_hat = (A(xr[j]) - mu) * r;
        const A g_x_hat = A(gr[j]) * A(gamma[j]);
        sum_g += g_x_hat;
        sum_g_x_hat += g_x_hat * x_hat;
    }
    const A mean_g = block_sum<A>(sum_g, shared) / A(d);
    const A mean_g_x_hat = block_sum<A>(sum_g_x_hat, shared) / A(d);
    for (long long j = threadIdx.x; j < d; j += blockDim.x) {
        const A x_hat = (A(xr[j]) - mu) * r;
        out[j] = T(r * (A(gr[j]) * A(gamma[j]) - mean_g - x_hat * mean_g_x_hat));
    }
}

template <typename T>
__device__ void backward_params(const T* x, const double* mean, const double* rstd, const T* g_y,
                                long long n, long long d, long long rows_per_chunk,
                                double* g_gamma, double* g_beta) {
    const long long column = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (column >= d) return;
    const long long start = (long long)blockIdx.y * rows_per_chunk;
    const long long stop = start + rows_per_chunk < n ? start + rows_per_chunk : n;
    double sum_gamma = 0, sum_beta = 0;
    for (long long i = start; i < stop; ++i) {
        const double g = double(g_y[i * d + column]);
        sum_gamma += g * (double(x[i * d + column]) - mean[i]) * rstd[i];
        sum_beta += g;
    }
    atomicAdd(g_gamma + column, sum_gamma);
    atomicAdd(g_beta + column, sum_beta);
}

extern "C" __global__ void layer_norm_forward_f32(const float* x, const float* gamma, const float* beta, double eps, long long d, float* y, double* mean, double* rstd) {
    forward_row<float, float>(x, gamma, beta, eps, d, y, mean, rstd);
}
extern "C" __global__ void layer_norm_forward_f64(const double* x, const double* gamma, const double* beta, double eps, long long d, double* y, double* mean, double* rstd) {
    forward_row<double, double>(x, gamma, beta, eps, d, y, mean, rstd);
}
extern "C" __global__ void layer_norm_backward_input_f32(const float* x, const double* mean, const double* rstd, const float* gamma, const float* g_y, long long d, float* g_x) {
    backward_row<float, float>(x, mean, rstd, gamma, g_y, d, g_x);
}
extern "C" __global__ void layer_norm_backward_input_f64(const double* x, const double* mean, const double* rstd, const double* gamma, const double* g_y, long long d, double* g_x) {
    backward_row<double, double>(x, mean, rstd, gamma, g_y, d, g_x);
}
extern "C" __global__ void layer_norm_backward_params_f32(const float* x, const double* mean, const double* rstd, const float* g_y, long long n, long long d, long long rows_per_chunk, double* g_gamma, double* g_beta) {
    backward_params<float>(x, mean, rstd, g_y, n, d, rows_per_chunk, g_gamma, g_beta);
}
extern "C" __global__ void layer_norm_backward_params_f64(const double* x, const double* mean, const double* rstd, const double* g_y, long long n, long long d, long long rows_per_chunk, double* g_gamma, double* g_beta) {
    backward_params<double>(x, mean, rstd, g_y, n, d, rows_per_chunk, g_gamma, g_beta);
}
