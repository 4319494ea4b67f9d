"""The high-pass copy on which shifts are estimated (1-photon data).

One-photon frames are dominated by a bright, smooth, slowly changing background. Shifts are
estimated on a spatially band-passed copy that keeps structure at the scale of cells and vessels:

    highpass(f) = G_gSig * f - box * f

where ``G_gSig`` is a Gaussian of standard deviation ``gSig_filt`` truncated to a square of side
``k = 3 * gSig_filt`` rounded to odd and normalised to sum 1, and ``box`` is the mean over the
same square. The kernel sums to zero (no background survives); it plays the role of CaImAn's
``gSig_filt`` kernel (a truncated Gaussian minus its mean over its support). With
``gSig_filt = None`` only the frame mean is removed.

The filter is applied in the Fourier domain (circular convolution, OpenCV's packed real DFT),
because the frame's spectrum is needed anyway for the cross-correlation: filtering and
correlating then cost one forward transform. Frames whose size is not a fast DFT size are
padded by mirror reflection. Values within ``k // 2`` px of the edges mix in the opposite
edge; registration never uses them (see the template taper in ``registration``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .validation import highpass_kernel_size


class HighPass:
    """High-pass filter for frames of one size, applied through the DFT.

    Parameters
    ----------
    shape : (int, int)
        Frame size ``(H, W)``.
    gSig_filt : (int, int) or None
        Filter scale (rows, columns) in px; None removes the mean only.

    Attributes
    ----------
    fft_shape : (int, int)
        Padded DFT size (OpenCV's optimal size >= the frame).
    kernel_spectrum : ndarray, float32
        Packed (CCS) spectrum of the kernel.
    edge : (int, int)
        Half kernel size: how far edge effects reach into the frame, px.
    """

    def __init__(self, shape: tuple[int, int], gSig_filt: tuple[int, int] | None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.fft_shape = (cv2.getOptimalDFTSize(self.shape[0]), cv2.getOptimalDFTSize(self.shape[1]))
        self.gSig_filt = None if gSig_filt is None else (int(gSig_filt[0]), int(gSig_filt[1]))
        kernel = np.zeros(self.fft_shape, np.float32)
        if self.gSig_filt is None:
            kernel[0, 0] = 1.0
            kernel -= np.float32(1.0 / kernel.size)
            self.edge = (0, 0)
        else:
            ky, kx = (highpass_kernel_size(g) for g in self.gSig_filt)
            gy = cv2.getGaussianKernel(ky, float(self.gSig_filt[0]), cv2.CV_64F)[:, 0]
            gx = cv2.getGaussianKernel(kx, float(self.gSig_filt[1]), cv2.CV_64F)[:, 0]
            small = np.outer(gy, gx) - 1.0 / (ky * kx)
            rows = (np.arange(ky) - ky // 2) % self.fft_shape[0]
            cols = (np.arange(kx) - kx // 2) % self.fft_shape[1]
            kernel[np.ix_(rows, cols)] = small
            self.edge = (ky // 2, kx // 2)
        self.kernel_spectrum = cv2.dft(kernel)

    def pad(self, frame: np.ndarray) -> np.ndarray:
        """The frame as float32, mirror-padded to :attr:`fft_shape`."""
        frame = np.asarray(frame, dtype=np.float32)
        (h, w), (fh, fw) = self.shape, self.fft_shape
        if (fh, fw) == (h, w):
            return frame
        return cv2.copyMakeBorder(frame, 0, fh - h, 0, fw - w, cv2.BORDER_REFLECT_101)

    def spectrum(self, frame: np.ndarray) -> np.ndarray:
        """Packed DFT (CCS) of the unfiltered frame, padded."""
        return cv2.dft(self.pad(frame))

    def from_spectrum(self, spectrum: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """High-passed frame (H, W) from the unfiltered frame's spectrum."""
        hp = cv2.dft(cv2.mulSpectrums(spectrum, self.kernel_spectrum, 0),
                     flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
        h, w = self.shape
        if out is None:
            return np.ascontiguousarray(hp[:h, :w])
        out[...] = hp[:h, :w]
        return out

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """High-passed frame (H, W), float32."""
        return self.from_spectrum(self.spectrum(frame), out)


def highpass_filter(frame: np.ndarray, gSig_filt: tuple[int, int] | None) -> np.ndarray:
    """Band-pass one frame for shift estimation (see module docstring).

    Parameters
    ----------
    frame : ndarray, shape (H, W)
        One frame (any real dtype).
    gSig_filt : (int, int) or None
        Filter scale (rows, columns) in px. ``None``: no filtering, only the mean is removed.

    Returns
    -------
    ndarray, shape (H, W), float32
        Zero-mean filtered frame.
    """
    frame = np.asarray(frame)
    return HighPass(frame.shape, gSig_filt)(frame)
