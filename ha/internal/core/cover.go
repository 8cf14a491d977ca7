package core

// Branch coverage of the decisions that matter to safety: every branch of
// the core that leads to a claim, a release or a stop calls cover with one
// of coverPoints. The simulator counts them and fails when a point is never
// reached by the seeds `make test` runs (sim_test.go): a branch no scenario
// reaches is a branch no scenario checks.

// CoverPoints are the points cover may be called with.
var CoverPoints = []string{
	"claim: rule A (own lease lapsed)",
	"claim: rule B (leader released) after a look",
	"claim: rule B (leader released) fast path",
	"claim: rule C (no member below)",
	"claim: rule D (silent leader)",
	"release: written",
	"release: leave only (no proof)",
	"release asked: shutdown of a holder",
	"release asked: shutdown of a member",
	"release asked: duty lost",
	"release asked: resigned",
	"release asked: record with a higher term",
	"stop: lease expired",
	"stop: membership lost",
	"stop: own node written by another client",
	"stop: duty lost",
	"stop: resigned",
	"stop: fence gave up",
	"stop: shutdown",
	"stop: shutdown while fencing",
	"stop: member below the holder",
	"stop: record term cannot grow",
	"stop: record with a higher term",
	"stop: clock stalled",
	"stop: unhealthy",
	"stop: unhealthy while fencing",
	"release asked: unhealthy",
	"candidacy: health failing",
	"candidacy: health recovered",
	"candidacy: unhealthy member leaves the line",
	"candidacy: member steps behind a better one",
	"candidacy: holder hands over to a better member",
	"pause: seen",
	"pause: resume seen",
	"switchover: member steps behind the target",
	"switchover: holder hands over",
}

// CoverHook, when set (tests only), hears every cover call. It must be safe
// for concurrent use: the simulator runs cores on several goroutines.
var CoverHook func(point string)

func cover(point string) {
	if CoverHook != nil {
		CoverHook(point)
	}
}
