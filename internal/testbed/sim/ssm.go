package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Command is one SSM Run Command the simulator received (SendCommand), and when it
// first answered that its invocation succeeded. Every invocation succeeds at once, as
// moto's do.
type Command struct {
	ID, Document, Comment, Account, Region string
	Instances                              []string
	Parameters                             map[string][]string
	Sent                                   time.Time
	// Succeeded is when a GetCommandInvocation first answered Success; zero before.
	Succeeded time.Time
}

// ssmState is the simulator's Run Command: its own lock, so that SSM calls do not wait
// for EC2's.
type ssmState struct {
	mu       sync.Mutex
	seq      uint64
	commands map[string]*Command
	order    []string
}

// Commands returns the commands received, in order.
func (s *Sim) Commands() []Command {
	st := &s.ssm
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Command, 0, len(st.order))
	for _, id := range st.order {
		c := *st.commands[id]
		c.Instances = slices.Clone(c.Instances)
		out = append(out, c)
	}
	return out
}

// serveSSM answers SSM's JSON protocol: SendCommand and GetCommandInvocation.
func (s *Sim) serveSSM(w http.ResponseWriter, r *http.Request, body []byte, account, region string) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	var in struct {
		DocumentName, Comment, CommandId, InstanceId string
		InstanceIds                                  []string
		Parameters                                   map[string][]string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeSSMError(w, "ValidationException", "request body: "+err.Error())
		return
	}
	s.mu.Lock()
	s.calls["ssm:"+action]++
	s.mu.Unlock()
	st := &s.ssm
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.commands == nil {
		st.commands = map[string]*Command{}
	}
	var out any
	switch action {
	case "SendCommand":
		if in.DocumentName == "" || len(in.InstanceIds) == 0 {
			writeSSMError(w, "ValidationException", "DocumentName and InstanceIds are required")
			return
		}
		st.seq++
		c := &Command{ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", st.seq, st.seq), Document: in.DocumentName,
			Comment: in.Comment, Account: account, Region: region, Instances: in.InstanceIds,
			Parameters: in.Parameters, Sent: s.now()}
		st.commands[c.ID] = c
		st.order = append(st.order, c.ID)
		out = map[string]any{"Command": map[string]any{"CommandId": c.ID, "DocumentName": c.Document,
			"Comment": c.Comment, "InstanceIds": c.Instances, "Status": "Pending"}}
	case "GetCommandInvocation":
		c := st.commands[in.CommandId]
		if c == nil || !slices.Contains(c.Instances, in.InstanceId) {
			writeSSMError(w, "InvocationDoesNotExist", "no invocation of "+in.CommandId+" on "+in.InstanceId)
			return
		}
		if c.Succeeded.IsZero() {
			c.Succeeded = s.now()
		}
		out = map[string]any{"CommandId": c.ID, "InstanceId": in.InstanceId, "DocumentName": c.Document,
			"Status": "Success", "StatusDetails": "Success", "ResponseCode": 0,
			"StandardOutputContent": "", "StandardErrorContent": ""}
	default:
		writeSSMError(w, "InvalidAction", "the simulator does not serve ssm:"+action)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func writeSSMError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}
