package core

import (
	"strings"
	"testing"
	"time"
)

func (r *rig) notices(level, substr string) int {
	n := 0
	for _, a := range r.acts {
		if x, ok := a.(ActNotice); ok && x.N.Level == level && strings.Contains(x.N.Msg, substr) {
			n++
		}
	}
	return n
}

// TestCoreClockStallEndsTheLease: a holder told its monotonic clock
// stalled stops acting at once and asks the duty to stop, whatever its
// lease said; it stays stopped after the duty has.
func TestCoreClockStallEndsTheLease(t *testing.T) {
	r := newRig(t, "a")
	r.lead()
	r.after(100 * time.Millisecond)
	if !r.c.Active(r.now) || r.stopped() {
		t.Fatalf("before the stall: active %v, stopped %v; want active", r.c.Active(r.now), r.stopped())
	}
	r.step(EvClockStall{By: 12300 * time.Millisecond})
	if r.c.Active(r.now) || r.c.pub.phase == PhaseActive || !r.c.LeaseEnd().IsZero() {
		t.Fatalf("still active after a stall (phase %s)", r.c.pub.phase)
	}
	if !r.stopped() {
		t.Fatal("no ActStopDuty after a stall")
	}
	if !strings.Contains(r.c.pub.reason, "monotonic clock stalled by 12.3s (host paused?): lease treated as lost") {
		t.Fatalf("reason %q does not name the stall", r.c.pub.reason)
	}
	if r.notices("warn", "stalled by 12.3s") != 1 {
		t.Fatal("no warn notice of the stall")
	}
	r.step(EvDutyStopped{})
	if r.c.Active(r.now) {
		t.Fatal("the stall's effects did not last past the duty's stop")
	}
}

// TestCoreClockStallDropsAnExtensionSentBeforeIt: an extension sent before
// the pause and acknowledged after it would date the lease from before the
// pause: it is given up as lost, and its late reply extends nothing.
func TestCoreClockStallDropsAnExtensionSentBeforeIt(t *testing.T) {
	r := newRig(t, "a")
	own := r.lead()
	r.after(ExtendEvery(ctD, ctM))
	ext := r.extension(own, 1, 0)
	r.now = r.now.Add(10 * time.Millisecond) // the monotonic clock saw only this of the pause
	r.step(EvClockStall{By: 30 * time.Second})
	if _, ok := r.c.req.pend[ext.ID]; ok {
		t.Fatal("the extension sent before the stall was not given up")
	}
	r.answer(ext, Result{Multi: []Result{{Stat: Stat{Version: 2}}, {}}})
	if r.c.Active(r.now) || !r.c.hold.leaseSend.IsZero() || !r.c.own.sent.IsZero() {
		t.Fatalf("a reply to a request sent before the stall counted: active %v, leaseSend %v, ownSent %v",
			r.c.Active(r.now), r.c.hold.leaseSend, r.c.own.sent)
	}
	for _, a := range r.acts {
		if _, ok := a.(ActExtendDuty); ok {
			t.Fatal("the duty was extended from a write sent before the stall")
		}
	}
}

// TestCoreClockStallOnAStandbyKeepsItsWaits: a standby's waits are lower
// bounds on elapsed time, which a stalled clock only lengthens: it stays a
// member, starts nothing, and still claims W after its observation.
func TestCoreClockStallOnAStandbyKeepsItsWaits(t *testing.T) {
	r := newRig(t, "a")
	own := r.join(0)
	r.look([]string{own}, nil, 0)
	r.after(ctW / 2)
	r.step(EvClockStall{By: time.Minute})
	if r.stopped() || r.c.role != roleMember || r.notices("warn", "stalled by 1m0s") != 1 {
		t.Fatalf("role %v, stopped %v: want a member, told of the stall", r.c.role, r.stopped())
	}
	r.after(ctW - ctW/2)
	if _, ok := r.claim(); !ok {
		t.Fatalf("no claim W after the first look; outstanding %v", r.pending())
	}
}
