package sim

import (
	"encoding/xml"
	"net/url"
	"slices"
	"strconv"
)

// Volumes made by CreateVolume (restore, drill): available at once, in the zone asked,
// tagged as their TagSpecifications say; DeleteVolume removes only those that are not
// attached. DescribeAvailabilityZones answers the region's zone "a".

type (
	createVolumeResponse struct {
		XMLName   xml.Name
		NS        string `xml:"xmlns,attr"`
		RequestID string `xml:"requestId"`
		volumeXML
		SnapshotID string `xml:"snapshotId"`
	}
	zoneXML struct {
		Name   string `xml:"zoneName"`
		State  string `xml:"zoneState"`
		Region string `xml:"regionName"`
	}
	zonesResponse struct {
		XMLName   xml.Name
		NS        string    `xml:"xmlns,attr"`
		RequestID string    `xml:"requestId"`
		Zones     []zoneXML `xml:"availabilityZoneInfo>item"`
	}
)

// volumeActionLocked answers the volume actions; ok is false for any other. s.mu is held.
func (s *Sim) volumeActionLocked(sc *scope, region, action string, form url.Values) (resp any, ok bool, err error) {
	name := xml.Name{Local: action + "Response"}
	switch action {
	case "CreateVolume":
		snap := form.Get("SnapshotId")
		if _, sn := sc.snapshot(snap); snap != "" && sn == nil {
			return nil, true, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", snap)
		}
		size, _ := strconv.Atoi(form.Get("Size"))
		if size == 0 {
			size = 8
		}
		v := &volume{id: s.idLocked("vol"), tags: resourceTags(form, "volume"), zone: form.Get("AvailabilityZone"),
			size: size, created: s.now().UTC(), made: true}
		sc.volumes = append(sc.volumes, v)
		x := v.xml(region)
		x.Status = "creating"
		return &createVolumeResponse{XMLName: name, NS: ec2NS, RequestID: "sim", volumeXML: x, SnapshotID: snap}, true, nil
	case "DeleteVolume":
		id := form.Get("VolumeId")
		i := slices.IndexFunc(sc.volumes, func(v *volume) bool { return v.id == id })
		switch {
		case i < 0:
			return nil, true, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		case sc.volumes[i].instance != "":
			return nil, true, badRequest("VolumeInUse", "Volume %s is currently attached to %s", id, sc.volumes[i].instance)
		}
		sc.volumes = slices.Delete(sc.volumes, i, i+1)
		return &ec2Response{XMLName: name, NS: ec2NS, RequestID: "sim", Return: "true"}, true, nil
	case "DescribeAvailabilityZones":
		return &zonesResponse{XMLName: name, NS: ec2NS, RequestID: "sim", Zones: []zoneXML{{region + "a", "available", region}}}, true, nil
	}
	return nil, false, nil
}

// xml is v as DescribeVolumes shows it: attached (in-use) or, one CreateVolume made,
// available.
func (v *volume) xml(region string) volumeXML {
	x := volumeXML{ID: v.id, Size: 8, Zone: region + "a", Status: "in-use", VolumeType: "gp3", Tags: tagsXML(v.tags)}
	if v.instance != "" {
		x.Attachments = []attachmentXML{{v.id, v.instance, v.device, "attached"}}
	}
	if v.made {
		x.Size, x.Zone, x.Status, x.CreateTime = v.size, v.zone, "available", ec2Time(v.created)
	}
	return x
}

// resourceTags reads the tags of the TagSpecifications for one resource type.
func resourceTags(form url.Values, resourceType string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt, ok := form[p+".ResourceType"]
		if !ok {
			return out
		}
		if rt[0] == resourceType {
			for k, v := range tags(form, p+".Tag") {
				out[k] = v
			}
		}
	}
}

// Volumes returns the ids of the volumes in account and region that CreateVolume made and
// that are still there.
func (s *Sim) Volumes(account, region string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.scopeLocked(account, region).volumes {
		if v.made {
			out = append(out, v.id)
		}
	}
	return out
}
