package roles

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fenceScript prints what a fencing script sees, walking the candidates
// the way the README shows.
const fenceScript = `echo "known=$HANODE_PREV_KNOWN first=$HANODE_PREV_NAME@$HANODE_PREV_HOST/$HANODE_PREV_HTTP:$HANODE_PREV_TERM count=$HANODE_PREV_COUNT term=$HANODE_TERM stale=${HANODE_PREV_3_NAME-unset}"
i=1
while [ "$i" -le "$HANODE_PREV_COUNT" ]; do
	eval "echo \"$i: \$HANODE_PREV_${i}_NAME \$HANODE_PREV_${i}_HOST \$HANODE_PREV_${i}_HTTP \$HANODE_PREV_${i}_TERM\""
	i=$((i + 1))
done`

// TestFenceCommandSeesEveryCandidate: FENCE_CMD sees the
// previous leader in HANODE_PREV_*, and every member that may have acted in
// HANODE_PREV_COUNT and HANODE_PREV_<i>_*; HANODE_PREV_KNOWN is 0 only
// when nobody is known.
func TestFenceCommandSeesEveryCandidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		prev Previous
		want string
	}{
		{"several candidates", Previous{Name: "a", Host: "ha", HTTP: "a:1", Term: 5, Known: true,
			Candidates: []Candidate{{Name: "a", Host: "ha", HTTP: "a:1", Term: 5}, {Name: "b", Host: "hb"}}},
			"known=1 first=a@ha/a:1:5 count=2 term=9 stale=unset\n1: a ha a:1 5\n2: b hb  0\n"},
		{"the record's leader alone", Previous{Name: "a", Host: "ha", Term: 5, Known: true},
			"known=1 first=a@ha/:5 count=1 term=9 stale=unset\n1: a ha  5\n"},
		{"nobody known", Previous{},
			"known=0 first=@/:0 count=0 term=9 stale=unset\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := FenceConfig{Command: fenceScript, Timeout: 10 * time.Second, Name: "c", Role: "primary", HAID: "g",
				Env: []string{"PATH=/usr/bin:/bin", "HANODE_PREV_3_NAME=stale"}, Output: &out}
			require.NoError(t, Fence(context.Background(), cfg, 9, tc.prev))
			assert.Equal(t, tc.want, out.String())
		})
	}
}
