package event_test

import (
	"fmt"

	"github.com/snapfleet/snapfleet/internal/event"
)

func ExampleParse() {
	ev, err := event.Parse([]byte(`{"version":"0","id":"release-1-4-0","detail-type":"snapfleet.BackupNow",
		"source":"release.pipeline","account":"111111111111","region":"eu-west-1",
		"detail":{"regions":["eu-west-1"],"tags":{"App":"shop"}}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Kind, ev.ID, ev.Selector.Regions, ev.Selector.Tags)

	_, err = event.Parse([]byte(`{"id":"x1","detail-type":"snapfleet.BackupNow","detail":{}}`))
	fmt.Println(err)
	// Output:
	// backup-now release-1-4-0 [eu-west-1] map[App:shop]
	// invalid event: detail: select by tags or instances (an empty selector is a full run: use the schedule)
}
