package ping

// StatusJob is one leader-only scheduled job (JOB_<NAME>_*) in /v2/status:
// its latest recorded run, whichever member ran it, and the next period.
type StatusJob struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	// LastPeriod is the scheduled instant of the latest recorded run, RFC
	// 3339 with nanoseconds in UTC; "" when none is recorded.
	LastPeriod string `json:"last_period"`
	// LastTerm is the term of the leadership that started it; LastBy the
	// member that did.
	LastTerm int64  `json:"last_term"`
	LastBy   string `json:"last_by"`
	// LastState is running, ok, failed, stopped or unknown (its leader lost
	// the leadership before recording the result); LastExit says how the
	// command ended.
	LastState string `json:"last_state"`
	LastExit  string `json:"last_exit"`
	// Next is the next period to run (RFC 3339, UTC); "" when none.
	Next string `json:"next"`
	// Running is true while this node runs one of the job's periods.
	Running bool `json:"running"`
}

// JobsReader gives the status the node's scheduled jobs; it must not block
// (answer from memory).
type JobsReader interface {
	Jobs() []StatusJob
}

// JobsFunc adapts a function to JobsReader.
type JobsFunc func() []StatusJob

// Jobs calls f.
func (f JobsFunc) Jobs() []StatusJob { return f() }

// WithJobs adds the node's scheduled jobs to /v2/status ("jobs"); without
// it the key is left out.
func WithJobs(r JobsReader) Option {
	return func(h *handler) { h.jobs = r }
}
