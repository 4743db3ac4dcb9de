"""Codec engine (no Qt): block transforms and their figures of merit, a block codec with a real
range-coded bitstream, real codecs through Pillow, metrics, RD sweeps and BD-rate.

Modules:
  ``transforms``  registry of transforms (``get_transform(name, N, alphabet)``)
  ``minangle``    minimal-angle DCT approximation search (Radünz et al.)
  ``fastalg``     butterfly fast algorithms + operation counts; numba-compiled straight-line kernels
  ``fom``         figures of merit (AR(1), rho = 0.95)
  ``quant``       JPEG tables, IJG quality, zig-zag
  ``blockcodec``  ``encode(image, BlockCodecParams)`` / ``decode(bytes)``
  ``realcodecs``  ``run_codec(image, "jpeg"|"webp"|"avif"|"jpeg2000"|"jpegxl"|"block"|"vq", q)``, ``inspect_jpeg``
  ``metrics``     PSNR (RGB, Y/Cb/Cr), SSIM, MS-SSIM
  ``difference``  ``signed_difference(a, b)``: B − A without wrap-around (the compare view's one subtraction)
  ``rd``          ``rd_sweep_job`` (cancellable), ``bd_rate``, ``bd_psnr``
  ``analysis``    energy compaction, block details for the panel
  ``images``      image loading and bundled samples
  ``tokens``      FSQ / VQ token quantizers and a VQ patch codec
  ``tasks``       job generators used by the panel
  ``plot``        RD plot as an image (Pillow)
"""
