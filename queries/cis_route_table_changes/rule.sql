SELECT * FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName IN ('CreateRoute', 'CreateRouteTable', 'ReplaceRoute', 'ReplaceRouteTableAssociation', 'DeleteRouteTable', 'DeleteRoute', 'DisassociateRouteTable')
