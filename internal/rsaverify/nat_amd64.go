// Copyright 2023 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE.golang file.

// A fork of Go 1.26.8's crypto/internal/fips140/bigmod/nat_asm.go, for amd64
// only (other architectures take the generic code of nat_generic.go).
// Changed: the CPU features come from golang.org/x/sys/cpu instead of
// crypto/internal/fips140deps/cpu, and are not registered with
// crypto/internal/impl.

//go:build !purego

package rsaverify

import "golang.org/x/sys/cpu"

// amd64 assembly uses ADCX/ADOX/MULX if ADX is available to run two carry
// chains in the flags in parallel across the whole operation, and aggressively
// unrolls loops.
//
// supportADX is read by nat_amd64.s; it is set once, when the program
// starts, from the CPU's features, and never written again.
//
//lint:ignore U1000 read by nat_amd64.s
var supportADX = cpu.X86.HasADX && cpu.X86.HasBMI2

//go:noescape
func addMulVVW1024(z, x *uint, y uint) (c uint)

//go:noescape
func addMulVVW1536(z, x *uint, y uint) (c uint)

//go:noescape
func addMulVVW2048(z, x *uint, y uint) (c uint)
