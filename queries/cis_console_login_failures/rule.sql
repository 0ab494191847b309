SELECT * FROM cloudtrail
WHERE eventName = 'ConsoleLogin'
  AND errorMessage = 'Failed authentication'
