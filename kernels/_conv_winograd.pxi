# ---- Winograd F(2x2, 3x3) (dl_winograd.h) ---------------------------------------------------------
# Stride-1, dilation-1, one-group 3x3 float32 convolutions with enough channels, on AVX-512 (the
# own GEMM): the forward (conv2d_forward, conv2d_pool2x2_forward: the output transform stores the
# bias, relu and, fused, the 2x2 pooling and its argmax) and the input gradient (the same
# algorithm on dy with the kernel rotated and its channels swapped, paddings 2 - pad) and the
# weight gradient (dU = V^T dM per transform position, then G^T dU G). 2.25x fewer multiplies;
# the transforms cost memory passes, so small channel counts, few tiles and outputs whose tiles
# save little stay on the implicit GEMM (the rule below; measurements in the Design block).

# C_in and C_out must both be at least this, and the tile grid hold at least this many tiles. The
# runner's CNN (Zen 4 host, alternated in one process), whole predict, us a sample, Winograd from
# 128 / 256 tiles (its 15x15x32 -> 64 layer: 49 tiles an image): 2 threads, batch 3 74 / 53, 4
# 55 / 49, 5 62 / 54; 1 thread 65 / 84, 63 / 83, 62 / 84 (few tiles keep two threads from gaining
# on Winograd's transforms). The rule reads no thread count, so that the bits stay the same on any
# number of threads; it favours the default, every core.
WINO_MIN_CHANNELS = 16
WINO_MIN_TILES = 256
# ... and save at least this factor of the direct convolution's products (x10: 14 = 1.4x; the
# runner's 15x15x32->64 input gradient saves 1.49x of its whole dy and measures 1.5x faster)
WINO_MIN_GAIN10 = 14
# Bytes of one thread's transform buffers V (16, T, C) and M (16, T, O): T tiles per block.
WINO_BLOCK_BYTES = 512 * 1024

cdef Py_ssize_t _WINO_MIN_CHANNELS = WINO_MIN_CHANNELS
cdef Py_ssize_t _WINO_MIN_TILES = WINO_MIN_TILES
cdef Py_ssize_t _WINO_MIN_GAIN10 = WINO_MIN_GAIN10
cdef Py_ssize_t _WINO_BLOCK_BYTES = WINO_BLOCK_BYTES
# 0 never, 1 where the shape rule takes it, 2 wherever it applies (tests)
cdef int _WINOGRAD = 1
# whether the weight gradient takes it (measured faster: see the Design block)
cdef bint _WINO_WGRAD = True
# Forward and input-gradient calls on several threads whose 16 transform-domain products (tiles x
# C_in x C_out multiply-adds each) stay under this split their tile blocks over the thread team
# (kernels/dl_team.h) instead of OpenMP: a region of a few hundred us that starts right after a
# team job (the batch-16 CNN: its first layer) waited for OpenMP's sleeping worker.
WINO_TEAM_MAX = 1 << 22
cdef Py_ssize_t _WINO_TEAM_MAX = WINO_TEAM_MAX


def set_winograd(mode=None, block_bytes=None, min_channels=None, min_tiles=None, weight_gradient=None,
                  team_max=None):
    """Override the Winograd choice (0 never, 1 the shape rule, 2 wherever it applies), its block
    size in bytes, the rule's thresholds and whether the weight gradient takes it (measurements
    and tests only); returns the previous (mode, block_bytes, min_channels, min_tiles,
    weight_gradient, team_max). team_max: WINO_TEAM_MAX (0: OpenMP for every multi-threaded call)."""
    global _WINOGRAD, _WINO_BLOCK_BYTES, _WINO_MIN_CHANNELS, _WINO_MIN_TILES, _WINO_WGRAD, _WINO_TEAM_MAX
    previous = (_WINOGRAD, _WINO_BLOCK_BYTES, _WINO_MIN_CHANNELS, _WINO_MIN_TILES, _WINO_WGRAD, _WINO_TEAM_MAX)
    if team_max is not None:
        _WINO_TEAM_MAX = int(team_max)
    if weight_gradient is not None:
        _WINO_WGRAD = bool(weight_gradient)
    if mode is not None:
        _WINOGRAD = int(mode)
    if block_bytes is not None:
        _WINO_BLOCK_BYTES = int(block_bytes)
    if min_channels is not None:
        _WINO_MIN_CHANNELS = int(min_channels)
    if min_tiles is not None:
        _WINO_MIN_TILES = int(min_tiles)
    return previous


cdef inline Py_ssize_t _wino_extent(Py_ssize_t out, Py_ssize_t length, Py_ssize_t pad) noexcept nogil:
    """Output rows (columns) that read the input at all: row i reads rows i - pad .. i - pad + 2,
    so rows from length + pad on are 0 (the input gradient of an output cut short)."""
    return min(out, max(length + pad, 0))


cdef enum:
    W_FORWARD = 0
    W_INPUT_GRAD = 1
    W_WEIGHT_GRAD = 2


cdef bint _winograd_applies(const Geom* g, int kind) noexcept nogil:
    """Whether a float32 convolution of geometry g (x of (H, W, C)) runs as Winograd: its forward,
    input gradient or weight gradient (kind). The rule reads x's shape, the channels and the
    top/left paddings only (the full output OH = H + 2 pad - 2 stands for dy's size), never
    dy's: the fused conv + pool (dy cut short) and the two layers (dy whole) take the same path,
    and their results are the same bits."""
    cdef Py_ssize_t oh = g.h + 2 * g.ph - 2, ow = g.w + 2 * g.pw - 2, tiles
    if not _OWN_SGEMM or _WINOGRAD <= 0 or g.kh != 3 or g.kw != 3 or g.groups != 1:
        return False
    if g.sh != 1 or g.sw != 1 or g.dh != 1 or g.dw != 1 or g.c <= 0 or g.o <= 0:
        return False
    if (kind == W_WEIGHT_GRAD and not _WINO_WGRAD) or (kind == W_INPUT_GRAD and (g.ph > 2 or g.pw > 2)):
        return False
    if _WINOGRAD >= 2:
        return True
    if oh < 1 or ow < 1:
        return False
    # the input gradient computes dx's (H, W) in tiles, the others the output's
    tiles = ((g.h + 1) // 2) * ((g.w + 1) // 2) if kind == W_INPUT_GRAD else ((oh + 1) // 2) * ((ow + 1) // 2)
    return (g.c >= _WINO_MIN_CHANNELS and g.o >= _WINO_MIN_CHANNELS and g.n * tiles >= _WINO_MIN_TILES
            and 10 * 9 * oh * ow >= _WINO_MIN_GAIN10 * 16 * tiles)


cdef struct _WinoJob:
    const float* x
    const float* u
    const float* zeros
    const float* bias
    float* y
    uint8_t* am
    Py_ssize_t h, w, cin, ph, pw, oh, ow, th, tw, tiles, t, cout, per
    int relu, pool, failed


cdef inline float* _alloc_lines(size_t n) noexcept nogil:
    """n floats at a cache-line boundary (free() releases them), or NULL."""
    cdef void* p = NULL
    if posix_memalign(&p, 64, n * sizeof(float) if n > 0 else 64) != 0:
        return NULL
    return <float*>p


cdef void _wino_chunk(void* arg, Py_ssize_t i) noexcept nogil:
    """Team chunk i of _winograd: tile block i, on transform buffers of its own."""
    cdef _WinoJob* j = <_WinoJob*>arg
    cdef float* buf = _alloc_lines(j.per)
    if buf == NULL:  # the call raises MemoryError after the team's job
        j.failed = 1
        return
    dl_wino_block(j.x, j.h, j.w, j.cin, j.ph, j.pw, j.oh, j.ow, j.th, j.tw, i * j.t,
                  min(i * j.t + j.t, j.tiles), j.u, j.cout, j.zeros, buf, buf + 16 * j.t * j.cin, j.y,
                  j.bias, j.relu, j.pool, j.am)
    free(buf)


cdef int _winograd(const float* x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t cin,
                   Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t oh, Py_ssize_t ow, const float* kernel,
                   Py_ssize_t cout, bint flip, const float* bias, bint relu, bint pool, uint8_t* am,
                   float* y, int n_threads) except -1:
    """y (N, OH, OW, cout) = conv(x (N, H, W, cin), kernel) + bias (relu), top / left paddings
    ph / pw; kernel (3, 3, cin, cout), or with flip (3, 3, cout, cin) rotated (the input
    gradient); pool: y (N, OH/2, OW/2, cout) pooled (OH, OW even), am its argmax bytes or NULL.
    Blocks of T tiles in parallel: T from the channels (WINO_BLOCK_BYTES), then evened out so that
    every thread gets as many blocks (a tile's result does not depend on its block). Rows and
    columns that read no input (_wino_extent) are not computed but zeroed."""
    cdef Py_ssize_t eh = _wino_extent(oh, h, ph), ew = _wino_extent(ow, w, pw), img, r
    cdef Py_ssize_t th = (eh + 1) // 2, tw = (ew + 1) // 2
    cdef Py_ssize_t tiles = n * th * tw, per, n_blocks, i, t0, t1
    cdef Py_ssize_t t = _WINO_BLOCK_BYTES // (64 * (cin + cout))
    cdef float* u = NULL
    cdef float* zeros = NULL
    cdef float* work = NULL
    cdef float* buf
    cdef _WinoJob job
    cdef bint on_team
    job.failed = 0
    t = max(14, t // 14 * 14)
    if t > tiles:
        t = tiles
    n_blocks = (tiles + t - 1) // t
    if n_threads > 1 and tiles > 0:
        # a multiple of the threads in blocks of equal size: 392 tiles in blocks of 84 (84 x 4, 56)
        # left one thread three blocks and the other two; in six blocks of 66, batch-8 calls of the
        # runner's 15x15x32 -> 64 layer took 225-310 us on 2 threads against 244-317 (1 thread 316)
        n_blocks = min(tiles, (n_blocks + n_threads - 1) // n_threads * n_threads)
        t = (tiles + n_blocks - 1) // n_blocks
        n_blocks = (tiles + t - 1) // t
    per = 16 * t * (cin + cout) + 16
    if n_threads > n_blocks:
        n_threads = <int>n_blocks
    if n_threads < 1:
        n_threads = 1
    on_team = n_threads > 1 and tiles * cin * cout < _WINO_TEAM_MAX
    u = _alloc_lines(16 * cin * cout)
    zeros = <float*>calloc(cin, sizeof(float))
    if not on_team:  # team chunks take transform buffers of their own (_wino_chunk)
        work = _alloc_lines(n_threads * per)
    try:
        if u == NULL or zeros == NULL or (work == NULL and not on_team):
            raise MemoryError()
        with nogil:
            if not pool and (2 * th < oh or 2 * tw < ow):
                for img in range(n):
                    for r in range(oh):
                        if r >= 2 * th:
                            memset(y + (img * oh + r) * ow * cout, 0, ow * cout * sizeof(float))
                        elif 2 * tw < ow:
                            memset(y + ((img * oh + r) * ow + 2 * tw) * cout, 0,
                                   (ow - 2 * tw) * cout * sizeof(float))
            if tiles == 0:
                return 0
            if flip:
                dl_wino_filter(kernel, cout, cin, 1, u)
            else:
                dl_wino_filter(kernel, cin, cout, 0, u)
            if n_threads == 1:
                for i in range(n_blocks):
                    t0 = i * t
                    t1 = min(t0 + t, tiles)
                    dl_wino_block(x, h, w, cin, ph, pw, oh, ow, th, tw, t0, t1, u, cout, zeros,
                                  work, work + 16 * t * cin, y, bias, relu, pool, am)
            elif on_team:
                job.x, job.u, job.zeros, job.bias, job.y, job.am = x, u, zeros, bias, y, am
                job.h, job.w, job.cin, job.ph, job.pw, job.oh, job.ow = h, w, cin, ph, pw, oh, ow
                job.th, job.tw, job.tiles, job.t, job.cout, job.per = th, tw, tiles, t, cout, per
                job.relu, job.pool, job.failed = relu, pool, 0
                team_run(_wino_chunk, &job, n_blocks, n_threads, tiles * cin * cout * 4 + 2 * pool + flip, NULL)
            else:
                with parallel(num_threads=n_threads):
                    buf = work + threadid() * per
                    for i in prange(n_blocks, schedule="dynamic"):
                        t0 = i * t
                        t1 = min(t0 + t, tiles)
                        dl_wino_block(x, h, w, cin, ph, pw, oh, ow, th, tw, t0, t1, u, cout, zeros,
                                      buf, buf + 16 * t * cin, y, bias, relu, pool, am)
    finally:
        free(u)
        free(zeros)
        free(work)
    if job.failed:
        raise MemoryError("winograd: no memory for a tile block's transforms")
    return 0



cdef int _winograd_wgrad(const float* x, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                         Py_ssize_t ph, Py_ssize_t pw, const float* dy, Py_ssize_t oh, Py_ssize_t ow,
                         Py_ssize_t o, float* dw, float* db, int n_threads) except -1:
    """dw (3, 3, C, O) (and db (O,) unless NULL) of conv(x (N, H, W, C)) for dy (N, OH, OW, O),
    top / left paddings ph / pw. Blocks of B whole images of dy's tile grid, B from x's shape
    (not dy's); block j adds into slot j % DW_SLOTS in increasing j (one task per slot), the
    slots are summed in slot order, then transformed back: the result does not depend on the
    thread count, and a dy cut short (fused pooling) gives the bits of the whole dy with those
    rows zero (its extra tiles add zeros)."""
    cdef Py_ssize_t th = (oh + 1) // 2, tw = (ow + 1) // 2
    cdef Py_ssize_t fh = max(h + 2 * ph - 2, 1), fw = max(w + 2 * pw - 2, 1)
    cdef Py_ssize_t tiles = n * th * tw, per, n_blocks, slots, s, j, t0, t1, size = 16 * c * o + o
    cdef Py_ssize_t images = _WINO_BLOCK_BYTES // (64 * (c + o) * ((fh + 1) // 2) * ((fw + 1) // 2))
    cdef Py_ssize_t t
    cdef float* acc = NULL
    cdef float* zeros = NULL
    cdef float* work = NULL
    cdef float* buf
    images = max(1, min(images, n))
    t = images * th * tw
    per = 16 * t * (c + o) + 16
    n_blocks = (n + images - 1) // images
    slots = min(_DW_SLOTS, n_blocks)
    if n_threads > slots:
        n_threads = <int>slots
    if n_threads < 1:
        n_threads = 1
    acc = <float*>calloc(slots * size, sizeof(float))
    zeros = <float*>calloc(c, sizeof(float))
    work = _alloc_lines(n_threads * per)
    try:
        if acc == NULL or zeros == NULL or work == NULL:
            raise MemoryError()
        with nogil:
            if n_threads == 1:
                for s in range(slots):
                    j = s
                    while j < n_blocks:
                        t0 = j * t
                        t1 = min(t0 + t, tiles)
                        dl_wino_wgrad_block(x, h, w, c, ph, pw, dy, oh, ow, th, tw, t0, t1, o, zeros, work,
                                            work + 16 * t * c, acc + s * size, acc + s * size + 16 * c * o)
                        j = j + slots
            else:
                with parallel(num_threads=n_threads):
                    buf = work + threadid() * per
                    for s in prange(slots, schedule="dynamic"):
                        j = s
                        while j < n_blocks:
                            t0 = j * t
                            t1 = min(t0 + t, tiles)
                            dl_wino_wgrad_block(x, h, w, c, ph, pw, dy, oh, ow, th, tw, t0, t1, o, zeros, buf,
                                                buf + 16 * t * c, acc + s * size, acc + s * size + 16 * c * o)
                            j = j + slots
            for s in range(1, slots):
                dl_add_to(acc, acc + s * size, size)
            dl_wino_filter_grad(acc, c, o, dw)
            if db != NULL:
                memcpy(db, acc + 16 * c * o, o * sizeof(float))
    finally:
        free(acc)
        free(zeros)
        free(work)
    return 0


def winograd_path(int n, int h, int w, int c_in, int c_out, int kh, int kw, int stride_h, int stride_w,
                  int pad_h, int pad_w, int dilation_h, int dilation_w, int groups, int oh, int ow,
                  bint backward_input=False, bint backward_weight=False):
    """Whether a float32 conv2d_forward / conv2d_pool2x2_forward, with backward_input
    conv2d_backward_input, or with backward_weight conv2d_backward_weight of these shapes runs as
    Winograd (x of (n, h, w, c_in); the rule does not read dy's size (oh, ow))."""
    cdef Geom g
    _geom(&g, n, h, w, c_in, oh, ow, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h,
          dilation_w, groups)
    return bool(_winograd_applies(&g, W_INPUT_GRAD if backward_input else
                                  W_WEIGHT_GRAD if backward_weight else W_FORWARD))
