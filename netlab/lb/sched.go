package lb

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
)

// WRRSequence returns one cycle of IPVS's interleaved weighted round robin over weights
// (ip_vs_wrr.c): indexes into weights, each appearing weight/gcd times, interleaved by
// descending current weight. Entries with weight <= 0 never appear. The cycle is empty
// when no weight is positive.
func WRRSequence(weights []int) []int {
	n := len(weights)
	maxW, g, total := 0, 0, 0
	for _, w := range weights {
		if w <= 0 {
			continue
		}
		maxW = max(maxW, w)
		g = gcd(g, w)
		total += w
	}
	if maxW == 0 {
		return nil
	}
	length := total / g
	seq := make([]int, 0, length)
	// IPVS state: cl (current index) starts before the first entry, cw at 0.
	i, cw := -1, 0
	for len(seq) < length {
		i = (i + 1) % n
		if i == 0 {
			cw -= g
			if cw <= 0 {
				cw = maxW
			}
		}
		if weights[i] >= cw {
			seq = append(seq, i)
		}
	}
	return seq
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// SHBuckets is the number of source-hash buckets of an sh virtual service. HMARK maps
// each client address to one bucket; each bucket belongs to one real server.
const SHBuckets = 32

// SHMarkBase is the packet mark of bucket 0; bucket b is marked SHMarkBase+b. Nothing else
// in the LB namespace uses packet marks.
const SHMarkBase = 0x100

// SHTable returns the owner (an index into vs.Backends, or -1 for none) of each of the
// SHBuckets buckets of vs.
//
// Each bucket has a home server: buckets are dealt out in contiguous runs proportional to
// the configured weights of all backends (healthy or not), so the home layout never
// depends on health. A bucket whose home server is usable stays there. An orphaned
// bucket (home server unhealthy or weight 0) goes to the usable server with the highest
// weighted rendezvous score for that bucket, so when a server fails only its own buckets
// move, and when a second one fails the first one's orphans stay where they are unless
// they were on it.
func SHTable(vs VirtualService) []int {
	table := make([]int, SHBuckets)
	home := shHome(vs.Backends)
	key := vs.Key()
	for b := range table {
		h := home[b]
		if h >= 0 && vs.Backends[h].Usable() {
			table[b] = h
			continue
		}
		table[b] = rendezvous(key, b, vs.Backends)
	}
	return table
}

// shHome deals the buckets out in contiguous runs by configured weight (largest
// remainder), -1 everywhere when no weight is positive.
func shHome(backends []Backend) []int {
	home := make([]int, SHBuckets)
	for i := range home {
		home[i] = -1
	}
	total := 0
	for _, b := range backends {
		total += max(b.Weight, 0)
	}
	if total == 0 {
		return home
	}
	quota := make([]int, len(backends))
	type rem struct{ idx, r int }
	var rems []rem
	given := 0
	for i, b := range backends {
		w := max(b.Weight, 0)
		quota[i] = w * SHBuckets / total
		given += quota[i]
		if w > 0 {
			rems = append(rems, rem{i, w * SHBuckets % total})
		}
	}
	// Hand out what is left to the largest remainders, earlier backends first on ties.
	for given < SHBuckets {
		best := -1
		for k, r := range rems {
			if best < 0 || r.r > rems[best].r {
				best = k
			}
		}
		quota[rems[best].idx]++
		rems[best].r = -1
		given++
	}
	b := 0
	for i, q := range quota {
		for range q {
			home[b] = i
			b++
		}
	}
	return home
}

// rendezvous picks the usable backend with the highest weighted rendezvous score for a
// bucket (score = -weight / ln(u), u uniform in (0,1) from a hash), or -1.
func rendezvous(key string, bucket int, backends []Backend) int {
	best, bestScore := -1, 0.0
	for i, b := range backends {
		if !b.Usable() {
			continue
		}
		h := sha256.Sum256([]byte(key + "|" + b.Addr() + "|" + strconv.Itoa(bucket)))
		u := (float64(binary.BigEndian.Uint64(h[:8])>>11) + 0.5) / (1 << 53)
		score := -float64(b.Weight) / math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// hmarkSeed is the --hmark-rnd of an sh virtual service, derived from its key so that
// different services spread the same clients differently.
func hmarkSeed(key string) uint32 {
	h := sha256.Sum256([]byte("netlab-sh|" + key))
	return binary.BigEndian.Uint32(h[:4])
}

// SHBucket returns the bucket the kernel's HMARK target puts a client address in for
// the sh virtual service vs, with the options Render writes (source address only). It
// mirrors xt_HMARK's hmark_hash: jhash_3words over the ordered address pair (the masked
// destination is 0) and zero ports, scaled into SHBuckets with reciprocal_scale.
func SHBucket(vs VirtualService, client netip.Addr) int {
	mark := hmarkHash(client.As4(), hmarkSeed(vs.Key()), SHBuckets, 0)
	return int(mark)
}

func hmarkHash(src [4]byte, rnd uint32, mod, offset uint32) uint32 {
	s := binary.BigEndian.Uint32(src[:])
	d := uint32(0) // --hmark-dst-prefix 0
	if d < s {
		s, d = d, s
	}
	h := jhash3(s, d, 0, rnd) // ports masked to 0, proto mask 0
	return uint32((uint64(h)*uint64(mod))>>32) + offset
}

// jhash3 is the kernel's jhash_3words (lookup3 final mix).
func jhash3(a, b, c, initval uint32) uint32 {
	iv := initval + 0xdeadbeef + (3 << 2)
	a += iv
	b += iv
	c += iv
	rol := bits.RotateLeft32
	c ^= b
	c -= rol(b, 14)
	a ^= c
	a -= rol(c, 11)
	b ^= a
	b -= rol(a, 25)
	c ^= b
	c -= rol(b, 16)
	a ^= c
	a -= rol(c, 4)
	b ^= a
	b -= rol(a, 14)
	c ^= b
	c -= rol(b, 24)
	return c
}
