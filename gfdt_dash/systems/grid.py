"""The doubly periodic grid over [0, 2π)² and its spectral operators.

Fields are real, shaped ``(batch, y, x)``; their Fourier coefficients are ``rfft2`` arrays shaped
``(batch, n, n//2 + 1)`` with the unnormalised forward transform, so the coefficient of a unit kick
at the origin is 1 at every wavenumber. Wavenumbers are integers. The first derivatives drop the
Nyquist wavenumber (``i k`` there is not the transform of a real field), the Laplacian keeps it.
"""

from __future__ import annotations

import math

import torch

__all__ = ["Grid"]


class Grid:
    """Wavenumbers and spectral operators of an ``n × n`` periodic grid on one device/dtype.

    Attributes (all broadcastable to ``(n, n//2 + 1)``): ``kx``, ``ky`` (integers as floats),
    ``k2 = kx² + ky²``, ``ikx``/``iky`` (first-derivative multipliers, Nyquist removed),
    ``dealias`` (2/3-rule mask: |kx|, |ky| ≤ n/3), ``is_mean`` (the k = 0 mode).
    """

    def __init__(self, n: int, device: torch.device, dtype: torch.dtype) -> None:
        self.n = n
        self.device = device
        self.dtype = dtype
        self.cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        self.spacing = 2 * math.pi / n
        ky = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)[:, None]
        kx = torch.fft.rfftfreq(n, 1.0 / n, dtype=dtype, device=device)[None, :]
        self.kx = kx.expand(n, n // 2 + 1).clone()
        self.ky = ky.expand(n, n // 2 + 1).clone()
        self.k2 = self.kx**2 + self.ky**2
        nyq = n / 2
        kx_d = torch.where(self.kx.abs() == nyq, 0.0, self.kx)
        ky_d = torch.where(self.ky.abs() == nyq, 0.0, self.ky)
        self.ikx = (1j * kx_d).to(self.cdtype)
        self.iky = (1j * ky_d).to(self.cdtype)
        self.is_mean = self.k2 == 0
        cut = n / 3
        self.dealias = ((self.kx.abs() <= cut) & (self.ky.abs() <= cut)).to(dtype)
        self._mirror = (-torch.arange(n, device=device)) % n  # index of −k_y
        # flat rfft2 positions of the k_x = 0 and Nyquist columns, and of their rows −k_y
        rows = torch.arange(n, device=device)[:, None]
        edges = torch.tensor([0, n // 2], device=device)
        half = n // 2 + 1
        self._edge_index = (rows * half + edges).flatten()
        self._edge_mirror = (self._mirror[:, None] * half + edges).flatten()
        coords = torch.arange(n, dtype=torch.float64) * self.spacing
        self.coords = coords.numpy()

    def to_spectral(self, field: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(field)

    def to_physical(self, field_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(field_hat, s=(self.n, self.n))

    def hermitian(self, field_hat: torch.Tensor) -> torch.Tensor:
        """Project ``rfft2`` arrays ``(..., n, n//2+1)`` onto those of real fields (a copy).

        An ``rfft2`` array is the transform of a real field iff its k_x = 0 and k_x = n/2
        (Nyquist) columns are Hermitian, ``f̂(−k_y) = conj f̂(k_y)``; the other columns are free.
        Round-off in FFTs and products leaves a small anti-Hermitian part in those two columns
        that ``irfft2`` silently drops, so no real field carries it and nothing in physical space
        can damp it; a multiplier with a positive real part there (the Allen–Cahn reaction at low
        k) then grows it without bound. This keeps ``½(f̂(k_y) + conj f̂(−k_y))`` in the two
        columns, the orthogonal projection, equal to ``rfft2(irfft2(f̂))`` up to round-off.
        """
        return self.hermitian_(field_hat.clone())

    def hermitian_(self, field_hat: torch.Tensor) -> torch.Tensor:
        """:meth:`hermitian` in place (for freshly computed arrays); returns ``field_hat``."""
        return self._symmetrise_edges_(field_hat, 0.5)

    def _symmetrise_edges_(self, field_hat: torch.Tensor, weight: float) -> torch.Tensor:
        """``f̂ ← weight·(f̂(k_y) + conj f̂(−k_y))`` in the k_x = 0 and Nyquist columns, in place.

        The two mirrored coefficients come out exact conjugates (the sum is computed from the
        same two numbers in either order, and negation is exact), so the result is exactly the
        rfft2 of a real field, not merely up to round-off. A contiguous array goes through
        gathers and one scatter on its flat spectrum (precomputed positions; about 0.6 of the
        time of the strided views of the two columns, bit for bit the same result), any other
        through those views.
        """
        if not field_hat.is_contiguous():
            edge = field_hat[..., :: self.n // 2]  # view of the k_x = 0 and n/2 columns
            mirrored = edge.index_select(-2, self._mirror).conj()  # row k_y ← row −k_y
            edge.add_(mirrored).mul_(weight)
            return field_hat
        flat = field_hat.view(-1, field_hat.shape[-2] * field_hat.shape[-1])
        edge = self._edge_index.expand(flat.shape[0], -1)
        if flat.requires_grad:  # gather's gradient would keep the array the scatter changes
            mirrored = flat.index_select(1, self._edge_mirror)
            edges = flat.index_select(1, self._edge_index)
        else:  # gather is the faster of the two
            mirrored = torch.gather(flat, 1, self._edge_mirror.expand(flat.shape[0], -1))
            edges = torch.gather(flat, 1, edge)
        flat.scatter_(1, edge, mirrored.conj_physical_().add_(edges).mul_(weight))
        return field_hat

    def real_field(self, field_hat: torch.Tensor) -> torch.Tensor:
        """``field_hat`` itself when it is exactly the rfft2 of a real field (the mirrored
        coefficients of its k_x = 0 and Nyquist columns exact conjugates, as every projected
        step leaves them), else :meth:`hermitian` of it (a contiguous copy): checking is
        cheaper than projecting, and the caller's array is never written."""
        if field_hat.is_contiguous():
            flat = field_hat.view(-1, field_hat.shape[-2] * field_hat.shape[-1])
            edge = torch.gather(flat, 1, self._edge_index.expand(flat.shape[0], -1))
            mirrored = torch.gather(flat, 1, self._edge_mirror.expand(flat.shape[0], -1))
            if torch.equal(edge, mirrored.conj_physical_()):
                return field_hat
        return self.hermitian_(field_hat.clone(memory_format=torch.contiguous_format))

    def white_hat(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """A draw distributed as ``rfft2`` of real white noise ``(batch, n, n)``, made in spectral
        space (no FFT): ``(batch, n, n//2+1)`` complex, Hermitian in the k_x = 0 and Nyquist
        columns, ``E|ŵ(k)|² = N²`` at every k — a complex normal with independent real and
        imaginary parts of variance N²/2, real with variance N² at the self-conjugate modes.

        Independent complex normals of variance N² are projected onto Hermitian arrays; in the two
        edge columns that halves the variance of each conjugate pair (and keeps only the real
        part at the self-conjugate modes), which a factor √2 there restores. The normals are drawn
        with their standard deviation N/√2 (no separate scaling pass); the edge columns then get
        ``(ŵ(k) + conj ŵ(−k))/√2`` — the projection ½(·) times that √2 — in place. The same
        random numbers as ``torch.randn`` of that shape, scaled, so a seed gives the same draw.
        """
        shape = (batch, self.n, self.n // 2 + 1, 2)
        z = torch.empty(shape, device=self.device, dtype=self.dtype)
        z.normal_(0.0, self.n / math.sqrt(2), generator=generator)
        return self._symmetrise_edges_(torch.view_as_complex(z), 1 / math.sqrt(2))

    def full_wavenumbers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer ``(ky, kx)`` of the full (``fft2``) layout, each ``(n, n)``."""
        k = torch.fft.fftfreq(self.n, 1.0 / self.n, dtype=self.dtype, device=self.device)
        return k[:, None].expand(self.n, self.n), k[None, :].expand(self.n, self.n)
