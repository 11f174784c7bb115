package cache

import (
	"errors"
	"testing"
	"time"
)

func TestGetLoadsOnceWithinTTL(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := New[string, int](2*time.Second, 0)
	c.SetClock(func() time.Time { return now })
	loads := 0
	load := func() (int, error) { loads++; return loads, nil }
	for range 3 {
		if v, _ := c.Get("a", load); v != 1 {
			t.Fatalf("got %d, want the first load's 1", v)
		}
	}
	now = now.Add(2 * time.Second)
	if v, _ := c.Get("a", load); v != 2 || loads != 2 {
		t.Fatalf("after the TTL got %d with %d loads, want a second load", v, loads)
	}
}

func TestDeleteAndPurgeForceALoad(t *testing.T) {
	c := New[string, int](time.Hour, 0)
	loads := 0
	load := func() (int, error) { loads++; return loads, nil }
	_, _ = c.Get("a", load)
	_, _ = c.Get("b", load)
	c.Delete("a")
	if v, _ := c.Get("a", load); v != 3 {
		t.Fatalf("after Delete got %d, want a new load", v)
	}
	c.DeleteFunc(func(k string, _ int) bool { return k == "b" })
	if v, _ := c.Get("b", load); v != 4 {
		t.Fatalf("after DeleteFunc got %d, want a new load", v)
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("Purge left %d entries", c.Len())
	}
}

func TestLoadRacingAnInvalidationIsNotStored(t *testing.T) {
	c := New[string, string](time.Hour, 0)
	_, _ = c.Get("a", func() (string, error) {
		c.Delete("a") // the row changed while it was being read
		return "old", nil
	})
	if v, _ := c.Get("a", func() (string, error) { return "new", nil }); v != "new" {
		t.Fatalf("got %q: a value read before an invalidation was kept", v)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	c := New[string, int](time.Hour, 0)
	boom := errors.New("boom")
	if _, err := c.Get("a", func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if v, err := c.Get("a", func() (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("got %d, %v: the error was cached", v, err)
	}
}

func TestZeroTTLAndNilDisable(t *testing.T) {
	for _, c := range []*TTL[string, int]{New[string, int](0, 0), nil} {
		loads := 0
		for range 2 {
			_, _ = c.Get("a", func() (int, error) { loads++; return loads, nil })
		}
		if loads != 2 {
			t.Fatalf("loads = %d, want 2 with the cache off", loads)
		}
	}
}

func TestSizeBound(t *testing.T) {
	c := New[int, int](time.Hour, 4)
	for i := range 10 {
		_, _ = c.Get(i, func() (int, error) { return i, nil })
	}
	if n := c.Len(); n > 4 {
		t.Fatalf("Len = %d, want at most 4", n)
	}
}
