package deflate

import "hash/crc32"

// Go's hash/crc32 cannot append one CRC to another (zlib's crc32_combine),
// so this file does it.
//
// The math: a CRC-32 register is a polynomial over GF(2) of degree < 32.
// In the reflected bit order of CRC-32 (IEEE) the top bit of a uint32 is the
// coefficient of x^0 and the bottom bit that of x^31. Running n more bytes
// through the register multiplies it by x^(8n) modulo the CRC polynomial P
// and adds the bytes' own contribution, which does not depend on the register.
// With the standard pre- and post-inversion, working that through for
// messages A and B gives
//
//	crc(A‖B) = crc(A)·x^(8·len(B)) mod P  ⊕  crc(B)
//
// so appending needs crc(B) and x^(8·len(B)) mod P, which a Fragment keeps.

// mulMod returns a·b mod P.
func mulMod(a, b uint32) uint32 {
	var p uint32
	// m walks a's coefficients from x^0 up while b is multiplied by x.
	for m := uint32(1) << 31; a&(m<<1-1) != 0 && m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b·x: the bottom bit (x^31) overflows to x^32, which is P's
		// lower terms.
		if b&1 != 0 {
			b = b>>1 ^ crc32.IEEE
		} else {
			b >>= 1
		}
	}
	return p
}

// x8pow2 holds x^(8·2^k) mod P for k = 0..63.
var x8pow2 = func() (t [64]uint32) {
	t[0] = 1 << (31 - 8) // x^8
	for k := 1; k < len(t); k++ {
		t[k] = mulMod(t[k-1], t[k-1])
	}
	return t
}()

// xpow8 returns x^(8n) mod P.
func xpow8(n uint64) uint32 {
	r := uint32(1) << 31 // x^0
	for k := 0; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			r = mulMod(r, x8pow2[k])
		}
	}
	return r
}

// crc32Combine returns the CRC-32 of A‖B, given crc(A), crc(B) and
// shift = xpow8(len(B)).
func crc32Combine(crcA, crcB, shift uint32) uint32 {
	return mulMod(crcA, shift) ^ crcB
}
