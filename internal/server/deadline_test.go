package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// TestDeadlineCtx: a request's context answers as context.WithDeadline of
// its parent and its cancel at the request's end would, whether or not
// anything waited on it before.
func TestDeadlineCtx(t *testing.T) {
	parentOf := func() (context.Context, context.CancelFunc) {
		return context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "conn"))
	}
	t.Run("open", func(t *testing.T) {
		parent, stop := parentOf()
		defer stop()
		end := time.Now().Add(time.Hour)
		c := &deadlineCtx{parent: parent, end: end}
		if d, ok := c.Deadline(); !ok || !d.Equal(end) {
			t.Errorf("Deadline() = %v, %v; want %v, true", d, ok, end)
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v before the deadline", err)
		}
		if v := c.Value(ctxKey{}); v != "conn" {
			t.Errorf("Value = %v; want the parent's", v)
		}
		if c.made.Load() {
			t.Error("the deadline's context was made though nothing waited on the request")
		}
		child, cancel := context.WithCancel(c)
		defer cancel()
		c.close()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child of the request's context is not canceled when the request ends")
		}
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
			t.Errorf("after the request: Err() = %v, Cause = %v; want context.Canceled", c.Err(), context.Cause(c))
		}
	})
	t.Run("closed unwatched", func(t *testing.T) {
		parent, stop := parentOf()
		defer stop()
		c := &deadlineCtx{parent: parent, end: time.Now().Add(time.Hour)}
		c.close()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err() = %v after the request; want context.Canceled", c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done is open after the request")
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		parent, stop := parentOf()
		defer stop()
		c := &deadlineCtx{parent: parent, end: time.Now().Add(20 * time.Millisecond)}
		defer c.close()
		time.Sleep(40 * time.Millisecond)
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
			t.Errorf("past the deadline: Err() = %v, Cause = %v; want context.DeadlineExceeded", c.Err(), context.Cause(c))
		}
		if v := c.Value(ctxKey{}); v != "conn" {
			t.Errorf("Value = %v; want the parent's", v)
		}
	})
	t.Run("deadline waited on", func(t *testing.T) {
		parent, stop := parentOf()
		defer stop()
		c := &deadlineCtx{parent: parent, end: time.Now().Add(20 * time.Millisecond)}
		defer c.close()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done is not closed at the request's deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Errorf("Err() = %v; want context.DeadlineExceeded", c.Err())
		}
	})
	t.Run("parent ended", func(t *testing.T) {
		parent, stop := parentOf()
		c := &deadlineCtx{parent: parent, end: time.Now().Add(time.Hour)}
		defer c.close()
		stop()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("Err() = %v once the parent ended; want context.Canceled", c.Err())
		}
	})
	t.Run("earlier parent deadline", func(t *testing.T) {
		pd := time.Now().Add(time.Minute)
		parent, stop := context.WithDeadline(context.Background(), pd)
		defer stop()
		c := &deadlineCtx{parent: parent, end: time.Now().Add(time.Hour)}
		defer c.close()
		if d, ok := c.Deadline(); !ok || !d.Equal(pd) {
			t.Errorf("Deadline() = %v, %v; want the parent's %v", d, ok, pd)
		}
	})
}
