package simzk

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// BenchmarkApply measures one Apply in an election-shaped workload: eight
// sessions join a group with ephemeral sequential members, list it with a
// child watch, watch a predecessor, read and write a leader node, check it in
// a multi, and leave (firing the watches). The loop stops once b.N Applies
// ran, so ns/op is per Apply (give or take one round); ops/s is its inverse.
func BenchmarkApply(b *testing.B) {
	s := New(Config{})
	const sessions = 8
	var ids [sessions]int64
	for i := range ids {
		ids[i], _ = s.CreateSession(10*time.Second, 0)
	}
	if _, evs := s.Apply(ids[0], Op{Kind: Create, Path: "/g"}, 0); len(evs) != 0 {
		b.Fatal("unexpected events")
	}
	s.Apply(ids[0], Op{Kind: Create, Path: "/leader", Data: []byte("x")}, 0)
	member := make([]string, sessions)
	data := []byte("candidate-0000")
	now := time.Duration(0)
	ops := 0
	apply := func(id int64, op Op) Result {
		now += time.Millisecond
		ops++
		res, _ := s.Apply(id, op, now)
		return res
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; ops < b.N; i++ {
		k := i % sessions
		id := ids[k]
		if member[k] != "" {
			apply(id, Op{Kind: Delete, Path: member[k], Version: -1})
		}
		member[k] = apply(id, Op{Kind: Create, Path: "/g/m-", Data: data, Flags: zk.FlagEphemeral | zk.FlagSequence}).Path
		apply(id, Op{Kind: Children, Path: "/g", Watch: true})
		apply(id, Op{Kind: Exists, Path: member[(k+sessions-1)%sessions], Watch: true})
		st := apply(id, Op{Kind: GetData, Path: "/leader", Watch: true}).Stat
		apply(id, Op{Kind: Multi, Ops: []Op{
			{Kind: Check, Path: member[k], Version: 0},
			{Kind: SetData, Path: "/leader", Data: data, Version: st.Version},
		}})
		apply(id, Op{Kind: Sync, Path: "/g"})
	}
	b.StopTimer()
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "ops/s")
}
