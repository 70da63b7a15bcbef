// The CT example's 3x3x3 binomial smoothing (1-2-1 along each axis, weights summing to 64,
// edges replicated, rounded as (sum + 32) >> 6) on int16 volumes: one thread per voxel, the
// same integer arithmetic as the CPU path in guests/imaging, so both give the same numbers.
extern "C" __global__ void smooth3d(const short* in, short* out, int nx, int ny, int nz)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long n = (long long)nx * ny * nz;
    if (i >= n) {
        return;
    }
    int x = (int)(i % nx);
    int y = (int)((i / nx) % ny);
    int z = (int)(i / ((long long)nx * ny));
    int sum = 0;
    for (int dz = -1; dz <= 1; dz++) {
        int zz = min(max(z + dz, 0), nz - 1);
        int wz = dz == 0 ? 2 : 1;
        for (int dy = -1; dy <= 1; dy++) {
            int yy = min(max(y + dy, 0), ny - 1);
            int wy = dy == 0 ? 2 : 1;
            for (int dx = -1; dx <= 1; dx++) {
                int xx = min(max(x + dx, 0), nx - 1);
                int wx = dx == 0 ? 2 : 1;
                sum += wz * wy * wx * in[((long long)zz * ny + yy) * nx + xx];
            }
        }
    }
    out[i] = (short)((sum + 32) >> 6);
}
