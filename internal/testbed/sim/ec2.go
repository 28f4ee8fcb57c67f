package sim

import (
	"encoding/xml"
	"maps"
	"net/url"
	"slices"
	"time"
)

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// The response documents, as EC2's query protocol names their elements.
type (
	tagXML struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	}
	snapshotXML struct {
		ID          string   `xml:"snapshotId"`
		VolumeID    string   `xml:"volumeId"`
		Status      string   `xml:"status,omitempty"`
		State       string   `xml:"state,omitempty"` // SnapshotInfo (CreateSnapshots) names it state
		StartTime   string   `xml:"startTime"`
		Progress    string   `xml:"progress"`
		OwnerID     string   `xml:"ownerId"`
		VolumeSize  int      `xml:"volumeSize"`
		Description string   `xml:"description"`
		Encrypted   bool     `xml:"encrypted"`
		Tags        []tagXML `xml:"tagSet>item"`
		StorageTier string   `xml:"storageTier,omitempty"`
	}
	ebsXML struct {
		VolumeID            string `xml:"volumeId"`
		Status              string `xml:"status"`
		DeleteOnTermination bool   `xml:"deleteOnTermination"`
	}
	mappingXML struct {
		DeviceName string `xml:"deviceName"`
		Ebs        ebsXML `xml:"ebs"`
	}
	instanceXML struct {
		ID             string       `xml:"instanceId"`
		ImageID        string       `xml:"imageId"`
		StateCode      int          `xml:"instanceState>code"`
		StateName      string       `xml:"instanceState>name"`
		InstanceType   string       `xml:"instanceType"`
		RootDeviceName string       `xml:"rootDeviceName"`
		RootDeviceType string       `xml:"rootDeviceType"`
		Mappings       []mappingXML `xml:"blockDeviceMapping>item"`
		Tags           []tagXML     `xml:"tagSet>item"`
	}
	reservationXML struct {
		ID        string        `xml:"reservationId"`
		OwnerID   string        `xml:"ownerId"`
		Instances []instanceXML `xml:"instancesSet>item"`
	}
	attachmentXML struct {
		VolumeID   string `xml:"volumeId"`
		InstanceID string `xml:"instanceId"`
		Device     string `xml:"device"`
		Status     string `xml:"status"`
	}
	volumeXML struct {
		ID          string          `xml:"volumeId"`
		Size        int             `xml:"size"`
		Zone        string          `xml:"availabilityZone"`
		Status      string          `xml:"status"`
		VolumeType  string          `xml:"volumeType"`
		CreateTime  string          `xml:"createTime,omitempty"`
		Attachments []attachmentXML `xml:"attachmentSet>item"`
		Tags        []tagXML        `xml:"tagSet>item"`
	}
	imageMappingXML struct {
		DeviceName string `xml:"deviceName"`
		SnapshotID string `xml:"ebs>snapshotId"`
	}
	imageXML struct {
		ID       string            `xml:"imageId"`
		OwnerID  string            `xml:"imageOwnerId"`
		State    string            `xml:"imageState"`
		Mappings []imageMappingXML `xml:"blockDeviceMapping>item"`
	}

	// ec2Response is every EC2 answer: the action's name + Response, a request id and
	// the action's fields, of which each answer fills its own.
	ec2Response struct {
		XMLName      xml.Name
		NS           string           `xml:"xmlns,attr"`
		RequestID    string           `xml:"requestId"`
		Reservations []reservationXML `xml:"reservationSet>item,omitempty"`
		Volumes      []volumeXML      `xml:"volumeSet>item,omitempty"`
		Snapshots    []snapshotXML    `xml:"snapshotSet>item,omitempty"`
		Images       []imageXML       `xml:"imagesSet>item,omitempty"`
		NextToken    string           `xml:"nextToken,omitempty"`
		Return       string           `xml:"return,omitempty"`
		SnapshotID   string           `xml:"snapshotId,omitempty"`
		// CreateSnapshot answers with the snapshot's fields at the top level.
		*snapshotXML
	}
)

// An empty list element (createVolumePermission of DescribeSnapshotAttribute) is no
// different from an absent one to the SDK, so the simulator omits it.

func ec2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func tagsXML(t map[string]string) []tagXML {
	out := make([]tagXML, 0, len(t))
	for _, k := range slices.Sorted(maps.Keys(t)) {
		out = append(out, tagXML{k, t[k]})
	}
	return out
}

func toSnapshotXML(sn *Snapshot) snapshotXML {
	return snapshotXML{ID: sn.ID, VolumeID: sn.Volume, Status: sn.status(), StartTime: ec2Time(sn.Start),
		Progress: "100%", OwnerID: sn.Owner, VolumeSize: 8, Description: sn.Description, Tags: tagsXML(sn.Tags), StorageTier: sn.tier()}
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (sc *scope) volume(id string) *volume {
	if i := byID(sc.volumes, id, func(v *volume) string { return v.id }); i >= 0 {
		return sc.volumes[i]
	}
	return nil
}

func (sc *scope) snapshot(id string) (int, *Snapshot) {
	if i := byID(sc.snapshots, id, func(sn *Snapshot) string { return sn.ID }); i >= 0 {
		return i, sc.snapshots[i]
	}
	return -1, nil
}

func (sc *scope) instance(id string) *Instance {
	if i := byID(sc.instances, id, func(in *Instance) string { return in.ID }); i >= 0 {
		return sc.instances[i]
	}
	return nil
}

// ec2Locked answers one EC2 action of account in region. s.mu is held.
func (s *Sim) ec2Locked(account, region, action string, form url.Values) (any, error) {
	sc := s.scopeLocked(account, region)
	s.settleCopiesLocked(sc)
	out := &ec2Response{XMLName: xml.Name{Local: action + "Response"}, NS: ec2NS, RequestID: "sim"}
	var err error
	switch action {
	case "DescribeInstances":
		err = sc.describeInstances(account, form, out)
	case "DescribeVolumes":
		err = sc.describeVolumes(region, form, out)
	case "DescribeSnapshots":
		err = sc.describeSnapshots(form, out)
	case "DescribeImages":
		err = sc.describeImages(account, form, out)
	case "DescribeLockedSnapshots":
		// No snapshot is ever locked here: an empty answer, paginated or not.
	case "DescribeSnapshotAttribute":
		if _, sn := sc.snapshot(form.Get("SnapshotId")); sn == nil {
			return nil, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", form.Get("SnapshotId"))
		}
		out.SnapshotID = form.Get("SnapshotId") // shared with nobody
	case "CreateSnapshot":
		v := sc.volume(form.Get("VolumeId"))
		if v == nil {
			return nil, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", form.Get("VolumeId"))
		}
		sn := s.snapshotLocked(sc, account, v, form.Get("Description"), snapshotTags(form))
		x := toSnapshotXML(sn)
		x.Status = "pending"
		x.Progress = ""
		out.snapshotXML = &x
		out.SnapshotID = sn.ID // the shallower snapshotId hides the embedded one
	case "CreateSnapshots":
		err = s.createSnapshots(sc, account, form, out)
	case "CreateTags":
		ids := list(form, "ResourceId")
		t := tags(form, "Tag")
		for _, id := range ids {
			if _, sn := sc.snapshot(id); sn != nil {
				for k, v := range t {
					sn.Tags[k] = v
				}
			} else if v := sc.volume(id); v != nil {
				for k, val := range t {
					v.tags[k] = val
				}
			} else {
				return nil, badRequest("InvalidID", "The ID '%s' is not valid", id)
			}
		}
		out.Return = "true"
	case "DeleteSnapshot":
		id := form.Get("SnapshotId")
		i, sn := sc.snapshot(id)
		if sn == nil {
			return nil, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
		for _, img := range sc.images {
			if img.snapshot == id {
				return nil, badRequest("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", id, img.id)
			}
		}
		sc.snapshots = slices.Delete(sc.snapshots, i, i+1)
		sc.copying = slices.DeleteFunc(sc.copying, func(c *Snapshot) bool { return c == sn })
		out.Return = "true"
	default:
		if resp, ok, verr := s.volumeActionLocked(sc, region, action, form); ok {
			return resp, verr
		}
		if resp, ok, err := s.copyActionLocked(sc, account, region, action, form); ok {
			return resp, err
		}
		return nil, badRequest("InvalidAction", "The action %s is not valid for this web service (the simulator does not model it).", action)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Sim) snapshotLocked(sc *scope, account string, v *volume, description string, t map[string]string) *Snapshot {
	sn := &Snapshot{ID: s.idLocked("snap"), Volume: v.id, Owner: account, Description: description,
		Start: s.now().UTC(), Tags: copyTags(t)}
	sc.snapshots = append(sc.snapshots, sn)
	return sn
}

func (sc *scope) describeInstances(account string, form url.Values, out *ec2Response) error {
	ids := list(form, "InstanceId")
	fs := filters(form)
	for _, id := range ids {
		if sc.instance(id) == nil {
			return badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	got, next, err := scan(form, sc.instances, func(in *Instance) string { return in.ID }, func(in *Instance) (instanceXML, bool, error) {
		if len(ids) > 0 && !slices.Contains(ids, in.ID) {
			return instanceXML{}, false, nil
		}
		ok, err := match(fs, in.Tags, func(name string) (string, bool) {
			switch name {
			case "instance-state-name":
				return in.State, true
			case "instance-id":
				return in.ID, true
			}
			return "", false
		})
		if err != nil || !ok {
			return instanceXML{}, false, err
		}
		x := instanceXML{ID: in.ID, ImageID: "ami-00000000000000000", StateCode: stateCodes[in.State], StateName: in.State,
			InstanceType: "t3.micro", RootDeviceType: "ebs", Tags: tagsXML(in.Tags)}
		for i, d := range in.Devices {
			if i == 0 {
				x.RootDeviceName = d.Name
			}
			x.Mappings = append(x.Mappings, mappingXML{d.Name, ebsXML{d.Volume, "attached", true}})
		}
		return x, true, nil
	})
	if err != nil {
		return err
	}
	// One reservation per instance: snapfleet reads the instances, not the grouping.
	for _, x := range got {
		out.Reservations = append(out.Reservations, reservationXML{ID: "r-" + x.ID[2:], OwnerID: account, Instances: []instanceXML{x}})
	}
	out.NextToken = next
	return nil
}

func (sc *scope) describeVolumes(region string, form url.Values, out *ec2Response) error {
	ids := list(form, "VolumeId")
	for _, id := range ids {
		if sc.volume(id) == nil {
			return badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	fs := filters(form)
	got, next, err := scan(form, sc.volumes, func(v *volume) string { return v.id }, func(v *volume) (volumeXML, bool, error) {
		if len(ids) > 0 && !slices.Contains(ids, v.id) {
			return volumeXML{}, false, nil
		}
		ok, err := match(fs, v.tags, func(name string) (string, bool) {
			switch name {
			case "volume-id":
				return v.id, true
			case "attachment.instance-id":
				return v.instance, true
			}
			return "", false
		})
		if err != nil || !ok {
			return volumeXML{}, false, err
		}
		return v.xml(region), true, nil
	})
	out.Volumes, out.NextToken = got, next
	return err
}

func (sc *scope) describeSnapshots(form url.Values, out *ec2Response) error {
	ids := list(form, "SnapshotId")
	for _, id := range ids {
		if _, sn := sc.snapshot(id); sn == nil {
			return badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
	}
	owners := list(form, "Owner")
	fs := filters(form)
	got, next, err := scan(form, sc.snapshots, func(sn *Snapshot) string { return sn.ID }, func(sn *Snapshot) (snapshotXML, bool, error) {
		if len(ids) > 0 && !slices.Contains(ids, sn.ID) {
			return snapshotXML{}, false, nil
		}
		// Every snapshot here is the scope's own: "self" and the account id both match.
		if len(owners) > 0 && !slices.Contains(owners, "self") && !slices.Contains(owners, sn.Owner) {
			return snapshotXML{}, false, nil
		}
		ok, err := match(fs, sn.Tags, func(name string) (string, bool) {
			switch name {
			case "volume-id":
				return sn.Volume, true
			case "snapshot-id":
				return sn.ID, true
			case "owner-id":
				return sn.Owner, true
			case "status":
				return sn.status(), true
			}
			return "", false
		})
		if err != nil || !ok {
			return snapshotXML{}, false, err
		}
		return toSnapshotXML(sn), true, nil
	})
	out.Snapshots, out.NextToken = got, next
	return err
}

func (sc *scope) describeImages(account string, form url.Values, out *ec2Response) error {
	var hits []imageXML
	for _, img := range sc.images {
		hits = append(hits, imageXML{ID: img.id, OwnerID: account, State: "available",
			Mappings: []imageMappingXML{{"/dev/xvda", img.snapshot}}})
	}
	got, next, err := page(form, hits)
	out.Images, out.NextToken = got, next
	return err
}

// createSnapshots snapshots every volume of an instance at one point in time, less the
// root volume (ExcludeBootVolume) and the excluded data volumes.
func (s *Sim) createSnapshots(sc *scope, account string, form url.Values, out *ec2Response) error {
	id := form.Get("InstanceSpecification.InstanceId")
	in := sc.instance(id)
	if in == nil {
		return badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	exclude := list(form, "InstanceSpecification.ExcludeDataVolumeId")
	t := snapshotTags(form)
	for i, d := range in.Devices {
		if (i == 0 && form.Get("InstanceSpecification.ExcludeBootVolume") == "true") || slices.Contains(exclude, d.Volume) {
			continue
		}
		v := sc.volume(d.Volume)
		if v == nil {
			continue // detached since
		}
		tv := copyTags(t)
		if form.Get("CopyTagsFromSource") == "volume" {
			for k, val := range v.tags {
				tv[k] = val
			}
		}
		x := toSnapshotXML(s.snapshotLocked(sc, account, v, form.Get("Description"), tv))
		x.Status, x.State, x.Progress = "", "pending", ""
		out.Snapshots = append(out.Snapshots, x)
	}
	return nil
}
