package ping

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

// fakeAdmin records what the admin API asked.
type fakeAdmin struct {
	paused  []string
	resumed int
	err     error
}

func (f *fakeAdmin) Pause(_ context.Context, reason string) error {
	f.paused = append(f.paused, reason)
	return f.err
}

func (f *fakeAdmin) Resume(context.Context) error { f.resumed++; return f.err }

func (f *fakeAdmin) Switchover(_ context.Context, to string) (string, error) {
	if to == "" {
		to = "next"
	}
	return to, f.err
}

func adminDo(t *testing.T, h http.Handler, method, target, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestAdminNeedsTheBearerToken: no token configured turns the API off
// (403, saying how to turn it on); a missing or wrong token is 401 and
// asks nothing of the election; only POST is allowed; the right token
// pauses with the body as the reason, and resumes.
func TestAdminNeedsTheBearerToken(t *testing.T) {
	st := ha.StateFunc(func() ha.State { return ha.State{Phase: ha.PhaseStandby} })
	a := &fakeAdmin{}
	off := New(testID, st, nil)
	off.MountAdmin(a, "")
	rec := adminDo(t, off, http.MethodPost, PathAdminPause, "Bearer anything", "")
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Contains(t, rec.Body.String(), "ADMIN_TOKEN_FILE")

	const token = "s3cret-token-0123456789"
	h := New(testID, st, nil)
	h.MountAdmin(a, token)
	for _, auth := range []string{"", "Bearer ", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
		rec := adminDo(t, h, http.MethodPost, PathAdminPause, auth, "")
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "Authorization %q", auth)
		assert.Equal(t, `Bearer realm="hanode"`, rec.Header().Get("WWW-Authenticate"))
	}
	assert.Empty(t, a.paused, "a refused request paused the group")

	rec = adminDo(t, h, http.MethodGet, PathAdminPause, "Bearer "+token, "")
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, http.MethodPost, rec.Header().Get("Allow"))

	rec = adminDo(t, h, http.MethodPost, PathAdminPause, "Bearer "+token, "kernel upgrade\n")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"result": "paused: no takeover until resumed"}`, rec.Body.String())
	assert.Equal(t, []string{"kernel upgrade"}, a.paused)

	rec = adminDo(t, h, http.MethodPost, PathAdminResume, "Bearer "+token, "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 1, a.resumed)

	rec = adminDo(t, h, http.MethodPost, PathAdminSwitchover+"?to=nsg-c", "Bearer "+token, "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"result": "nsg-c leads"}`, rec.Body.String())
	a.err = fmt.Errorf("%w: nsg-x is not a member", ha.ErrSwitchoverRefused)
	rec = adminDo(t, h, http.MethodPost, PathAdminSwitchover+"?to=nsg-x", "Bearer "+token, "")
	assert.Equal(t, http.StatusConflict, rec.Code)
	assert.Contains(t, rec.Body.String(), "nsg-x is not a member")

	a.err = errors.New("ha: pause: read /hanode/groups/g: no session")
	rec = adminDo(t, h, http.MethodPost, PathAdminResume, "Bearer "+token, "")
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "no session")
}

// TestAdminTokenCompareTakesNoLongerForACloserGuess: the token is compared
// as digests in constant time, so a guess sharing a longer prefix with the
// token is not measurably slower to refuse (a coarse check: the medians of
// many refusals differ by less than the noise a timing attack would need).
func TestAdminTokenCompareTakesNoLongerForACloserGuess(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	h := New(testID, ha.StateFunc(func() ha.State { return ha.State{} }), nil)
	h.MountAdmin(&fakeAdmin{}, token)
	median := func(guess string) time.Duration {
		const n = 301
		ds := make([]time.Duration, n)
		for i := range ds {
			start := time.Now()
			if rec := adminDo(t, h, http.MethodPost, PathAdminPause, "Bearer "+guess, ""); rec.Code != http.StatusUnauthorized {
				t.Fatalf("guess %q: %d", guess, rec.Code)
			}
			ds[i] = time.Since(start)
		}
		for i := 1; i < n; i++ { // insertion sort: small n
			for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
				ds[j], ds[j-1] = ds[j-1], ds[j]
			}
		}
		return ds[n/2]
	}
	far, near := median("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"), median(token[:31]+"z")
	t.Logf("median refusal: far guess %v, near guess %v", far, near)
	// What is asserted is the mechanism (subtle.ConstantTimeCompare of
	// SHA-256 digests, admin.go); the timing is logged, as a sanity check,
	// and only a gross difference fails.
	if near > 3*far+50*time.Microsecond {
		t.Errorf("a near guess took %v, a far one %v", near, far)
	}
}
