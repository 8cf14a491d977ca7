package simzk

import (
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
)

// Watches are one-shot and kept per session, like ZooKeeper's WatchManager:
// a table from path to the sessions watching it, one table for data and exist
// watches (ZooKeeper does not tell them apart) and one for child watches. A
// session is in a path's list at most once, so it gets one event per trigger
// however many times it asked for the watch.

func addWatch(tbl map[string][]int64, path string, id int64) {
	ids := tbl[path]
	if !slices.Contains(ids, id) {
		tbl[path] = append(ids, id)
	}
}

// trigger fires and removes every watch on path in tbl, appending one event of
// type typ per watching session to evs, except for sessions that already have
// an event in skip (their watch is removed silently).
func (s *Server) trigger(tbl map[string][]int64, path string, typ zk.EventType, evs []Event, skip []Event) []Event {
	ids, ok := tbl[path]
	if !ok {
		return evs
	}
	delete(tbl, path)
next:
	for _, id := range ids {
		for _, e := range skip {
			if e.Session == id {
				continue next
			}
		}
		evs = append(evs, Event{Session: id, Type: typ, Path: path})
	}
	return evs
}

// dropWatches forgets every watch of the session.
func (s *Server) dropWatches(id int64) {
	for _, tbl := range []map[string][]int64{s.dataW, s.childW} {
		for path, ids := range tbl {
			if i := slices.Index(ids, id); i >= 0 {
				if len(ids) == 1 {
					delete(tbl, path)
				} else {
					tbl[path] = slices.Delete(ids, i, i+1)
				}
			}
		}
	}
}

// Watches returns the paths the session watches, each list sorted: data holds
// data and exist watches (ZooKeeper keeps them in one table), child the child
// watches.
func (s *Server) Watches(id int64) (data, child []string) {
	for path, ids := range s.dataW {
		if slices.Contains(ids, id) {
			data = append(data, path)
		}
	}
	for path, ids := range s.childW {
		if slices.Contains(ids, id) {
			child = append(child, path)
		}
	}
	slices.Sort(data)
	slices.Sort(child)
	return data, child
}

// SetWatches is the request go-zookeeper sends after it reconnects with the
// same session, re-registering the watches it still holds; relZxid is the
// zxid of the last reply the client received. The rules are ZooKeeper's
// DataTree.setWatches, applied in list order (data, exist, child):
//
//   - data watch: node missing -> NodeDeleted; node's mzxid > relZxid ->
//     NodeDataChanged; else the watch is registered again.
//   - exist watch: node exists -> NodeCreated; else registered.
//   - child watch: node missing -> NodeDeleted; node's pzxid > relZxid ->
//     NodeChildrenChanged; else registered.
//
// An event replaces the watch: it is not registered. It returns
// zk.ErrSessionExpired if the session is unknown or expired. Events of
// expirations due at now come first.
func (s *Server) SetWatches(id int64, relZxid int64, data, exist, child []string, now time.Duration) ([]Event, error) {
	evs := s.advance(now)
	if err := s.touch(id, now); err != nil {
		return evs, err
	}
	for _, p := range data {
		switch n := s.nodes[p]; {
		case n == nil:
			evs = append(evs, Event{id, zk.EventNodeDeleted, p})
		case n.mzxid > relZxid:
			evs = append(evs, Event{id, zk.EventNodeDataChanged, p})
		default:
			addWatch(s.dataW, p, id)
		}
	}
	for _, p := range exist {
		if s.nodes[p] != nil {
			evs = append(evs, Event{id, zk.EventNodeCreated, p})
		} else {
			addWatch(s.dataW, p, id)
		}
	}
	for _, p := range child {
		switch n := s.nodes[p]; {
		case n == nil:
			evs = append(evs, Event{id, zk.EventNodeDeleted, p})
		case n.pzxid > relZxid:
			evs = append(evs, Event{id, zk.EventNodeChildrenChanged, p})
		default:
			addWatch(s.childW, p, id)
		}
	}
	return evs, nil
}
