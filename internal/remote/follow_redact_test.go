package remote

import (
	"net"
	"strings"
	"testing"
	"time"
)

// A replica's writer URL may carry the credentials the follower pulls
// with (cairn remote add writer http://USER:PASS@HOST): its log, which
// operators ship elsewhere, names the writer without them.
func TestFollowerLogHidesWriterCredentials(t *testing.T) {
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the writer is down
	rep := w.newReplica("replica", "http://bob:s3cret@"+addr)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(rep.log.String(), "cannot follow the writer now: the pull failed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the follower logged no failed pull in 30 s:\n%s", rep.log.String())
		}
	}
	log := rep.log.String()
	if strings.Contains(log, "s3cret") {
		t.Errorf("the follower's log shows the writer's password:\n%s", log)
	}
	if !strings.Contains(log, `"writer":"http://`+addr+`"`) {
		t.Errorf("the follower's log does not name the writer (http://%s):\n%s", addr, log)
	}
}
