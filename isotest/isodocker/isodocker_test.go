package isodocker

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestAvailableFalseFast checks that Available answers false, quickly, when
// no Docker engine answers: one endpoint that does not exist and one that
// accepts connections but never replies.
func TestAvailableFalseFast(t *testing.T) {
	t.Setenv("DOCKER_MACHINE_NAME", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_URL", "")

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()

	for _, tc := range []struct{ name, host string }{
		{"missing socket", "unix://" + filepath.Join(t.TempDir(), "docker.sock")},
		{"silent engine", "tcp://" + silent.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.host)
			start := time.Now()
			ok := provider{}.Available(context.Background())
			took := time.Since(start)
			if ok {
				t.Fatalf("Available() = true with DOCKER_HOST=%s", tc.host)
			}
			if took > 3*time.Second {
				t.Fatalf("Available() took %s, want about %s at most", took, pingTimeout)
			}
			t.Logf("Available() = false in %s", took.Round(time.Millisecond))
		})
	}
}
