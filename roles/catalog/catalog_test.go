package catalog

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Set
		err  error
	}{
		{name: "primary alone", in: "primary", want: Set{Primary}},
		{name: "secondary alone", in: "secondary", want: Set{Secondary}},
		{name: "monitor alone", in: "monitor", want: Set{Monitor}},
		{name: "compute alone", in: "compute", want: Set{Compute}},
		{name: "alert alone", in: "alert", want: Set{Alert}},
		{name: "combination in canonical order", in: "primary,monitor", want: Set{Primary, Monitor}},
		{name: "combination is put in canonical order", in: "monitor,primary", want: Set{Primary, Monitor}},
		{name: "spaces around names are ignored", in: "  monitor , primary ", want: Set{Primary, Monitor}},
		{name: "case is ignored", in: "Primary,MONITOR", want: Set{Primary, Monitor}},
		{name: "every role but secondary", in: "alert,compute,monitor,primary", want: Set{Primary, Monitor, Compute, Alert}},
		{name: "unknown role", in: "backup", err: ErrUnknownRole},
		{name: "unknown role in a combination", in: "primary,backup", err: ErrUnknownRole},
		{name: "trailing comma is an empty name", in: "primary,", err: ErrUnknownRole},
		{name: "empty", in: "", err: ErrUnknownRole},
		{name: "only spaces", in: "   ", err: ErrUnknownRole},
		{name: "duplicate", in: "primary,primary", err: ErrBadCombination},
		{name: "duplicate differing in case and space", in: "monitor, Monitor", err: ErrBadCombination},
		{name: "combination without primary", in: "monitor,compute", err: ErrBadCombination},
		{name: "secondary combined without primary", in: "secondary,monitor", err: ErrBadCombination},
		{name: "primary with secondary", in: "primary,secondary", err: ErrBadCombination},
		{name: "primary with secondary and more", in: "monitor,secondary,primary", err: ErrBadCombination},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSetStringIsCanonicalAndParsesBack(t *testing.T) {
	set, err := Parse("alert, monitor ,PRIMARY")
	require.NoError(t, err)
	assert.Equal(t, "primary,monitor,alert", set.String())
	again, err := Parse(set.String())
	require.NoError(t, err)
	assert.Equal(t, set, again)
}

func TestSetHas(t *testing.T) {
	set := Set{Primary, Monitor}
	assert.True(t, set.Has(Primary))
	assert.True(t, set.Has(Monitor))
	assert.False(t, set.Has(Secondary))
	assert.False(t, Set(nil).Has(Primary))
}
