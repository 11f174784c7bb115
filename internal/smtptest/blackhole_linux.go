package smtptest

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// NewBlackholeAddr returns a loopback "127.0.0.1:port" where TCP connects hang until the
// client's connect timeout, like a firewall that drops packets. It listens with a backlog
// of 0, never accepts and fills the accept queue; Linux then drops further SYNs.
func NewBlackholeAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("smtptest: error creating socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("smtptest: error binding socket: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("smtptest: error listening: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("smtptest: error reading socket name: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	fillAcceptQueue(t, addr)
	return addr
}

// fillAcceptQueue connects until a connect times out: from then on the queue is full.
func fillAcceptQueue(t testing.TB, addr string) {
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatalf("smtptest: accept queue of %s never filled", addr)
}
