package isotest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// fakeT records what run reports, so tests can watch the suite fail without
// failing themselves.
type fakeT struct {
	mu       *sync.Mutex
	name     string
	failed   *[]string
	logs     *[]string
	cleanups *[]func()
	fatal    bool
}

func newFakeT() *fakeT {
	return &fakeT{mu: &sync.Mutex{}, name: "fake", failed: &[]string{}, logs: &[]string{}, cleanups: &[]func(){}}
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.failed = append(*f.failed, f.name+": "+fmt.Sprintf(format, args...))
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.fatal = true
}

func (f *fakeT) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.logs = append(*f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.cleanups = append(*f.cleanups, fn)
}

func (f *fakeT) Run(name string, fn func(testingT)) bool {
	sub := *f
	sub.name = f.name + "/" + name
	n := len(*f.failed)
	fn(&sub)
	return len(*f.failed) == n
}

// RunFake runs the suite like Run, on a fake testing.T, and returns the
// report and the failure messages Run would have reported. The fake's
// cleanups run before it returns.
func RunFake(t *testing.T, target *Target, opts *RunOpts) (*Report, []string) {
	f := newFakeT()
	rep := run(f, target, opts)
	for i := len(*f.cleanups) - 1; i >= 0; i-- {
		(*f.cleanups)[i]()
	}
	var out []string
	for _, s := range *f.failed {
		out = append(out, strings.TrimPrefix(s, "fake/"))
	}
	return rep, out
}
