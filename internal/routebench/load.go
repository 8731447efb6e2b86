package routebench

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dist is how an operation picks its tenant.
type Dist string

// The tenant distributions.
const (
	// Uniform picks every tenant with the same probability.
	Uniform Dist = "uniform"
	// Zipf picks tenant rank k with probability proportional to
	// 1/(1+k)^1.1: a few tenants get most of the traffic.
	Zipf Dist = "zipf"
)

// LoadOpts configures one timed run of one design.
type LoadOpts struct {
	Tenants    int
	Goroutines int
	Dist       Dist
	Duration   time.Duration
	// ServerPID is the postmaster's PID when the server runs on this machine,
	// to read its CPU time from /proc; 0 to skip.
	ServerPID int
}

// Result is what one timed run measured.
type Result struct {
	Ops, Errors int64
	FirstErr    error
	Elapsed     time.Duration
	// Latencies of the successful operations, sorted.
	Latencies []time.Duration
	// ProcCPU is this process's user+system CPU time during the run.
	ProcCPU time.Duration
	// ServerCPU is the PostgreSQL server's (postmaster and backends)
	// user+system CPU time during the run, or -1 when it cannot be read.
	ServerCPU time.Duration
}

// Throughput is operations per second.
func (r Result) Throughput() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// Run drives op with o.Goroutines goroutines for o.Duration.
func Run(ctx context.Context, op Op, o LoadOpts) Result {
	var mu sync.Mutex
	var res Result
	lats := make([][]time.Duration, o.Goroutines)
	proc0 := procCPU()
	srv0 := serverCPU(o.ServerPID)
	start := time.Now()
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for g := range o.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g)+1, uint64(start.UnixNano())))
			var zipf *rand.Zipf
			if o.Dist == Zipf && o.Tenants > 1 {
				zipf = rand.NewZipf(rng, 1.1, 1, uint64(o.Tenants-1))
			}
			local := make([]time.Duration, 0, 4096)
			var errs int64
			var firstErr error
			for {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				t := rng.IntN(o.Tenants)
				if zipf != nil {
					t = int(zipf.Uint64())
				}
				if err := op(ctx, t, int64(rng.IntN(Rows))+1); err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			lats[g] = local
			mu.Lock()
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.ProcCPU = procCPU() - proc0
	if srv0 >= 0 {
		if s1 := serverCPU(o.ServerPID); s1 >= 0 {
			res.ServerCPU = s1 - srv0
		} else {
			res.ServerCPU = -1
		}
	} else {
		res.ServerCPU = -1
	}
	n := 0
	for _, l := range lats {
		n += len(l)
	}
	all := make([]time.Duration, 0, n)
	for _, l := range lats {
		all = append(all, l...)
	}
	res.Ops = int64(n)
	res.Latencies = SortDurations(all)
	return res
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the kernel's USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

// serverCPU sums the CPU time of the postmaster pid (including its reaped
// children) and of its live children, from /proc. -1 when unreadable.
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	ticks := func(fields []string, idx ...int) int64 {
		var s int64
		for _, i := range idx {
			v, _ := strconv.ParseInt(fields[i], 10, 64)
			s += v
		}
		return s
	}
	read := func(p string) []string {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		s := string(b)
		// comm may contain spaces; the fields after it start after ')'.
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return nil
		}
		return append([]string{"pid", "comm"}, strings.Fields(s[i+1:])...)
	}
	pm := read(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if len(pm) < 17 {
		return -1
	}
	// Fields (1-based in proc(5)): 14 utime, 15 stime, 16 cutime, 17 cstime.
	total := ticks(pm, 13, 14, 15, 16)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	ppid := strconv.Itoa(pid)
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		f := read(filepath.Join("/proc", e.Name(), "stat"))
		if len(f) < 17 || f[3] != ppid {
			continue
		}
		total += ticks(f, 13, 14)
	}
	return time.Duration(total) * time.Second / clockTick
}

// PostmasterPID returns the parent of backend pid when it can be read from
// /proc (the server runs on this machine), or 0.
func PostmasterPID(backend uint32) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(int(backend)), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}
