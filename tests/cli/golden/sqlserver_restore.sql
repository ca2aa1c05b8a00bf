-- keyplane: restore the TDE certificate of chain dbm, version 1, on a SQL Server
-- instance (a DR instance, or a new availability group replica).
--   [dbm_v1]: CN=dbm, thumbprint 0x9E00202C7055170AE891B333E15DBDC62C568326, valid 2018-05-15 to 2019-05-15
-- Copy dbm_v1.cer and dbm_v1.pvk to a directory the SQL Server service can read, then:
-- (each password as a -v, or in the environment, which keeps it out of the process list)
--   sqlcmd -S SERVER -i restore.sql -v CERT_DIR="DIR" PVK_PASSWORD="..." MASTER_KEY_PASSWORD="..." DMK_PASSWORD_HR="..."
-- PVK_PASSWORD: keyplane secret get --chain dbm --name dbm.pvk-password --version 1
-- MASTER_KEY_PASSWORD: always given; it makes master's database master key when the
-- instance has none yet (that key protects the certificate's private key): keep it
-- with the instance's other secrets.

:on error exit
USE master;
GO
IF NOT EXISTS (SELECT 1 FROM sys.symmetric_keys WHERE name = '##MS_DatabaseMasterKey##')
    CREATE MASTER KEY ENCRYPTION BY PASSWORD = '$(MASTER_KEY_PASSWORD)';
GO
IF EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x9E00202C7055170AE891B333E15DBDC62C568326
           AND pvt_key_encryption_type = 'NA')
    RAISERROR('keyplane: certificate 0x9E00202C7055170AE891B333E15DBDC62C568326 is here without its private key: drop it and run again', 16, 1);
ELSE IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x9E00202C7055170AE891B333E15DBDC62C568326)
    CREATE CERTIFICATE [dbm_v1]
        FROM FILE = '$(CERT_DIR)\dbm_v1.cer'
        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\dbm_v1.pvk',
                          DECRYPTION BY PASSWORD = '$(PVK_PASSWORD)');
GO

-- [HR] (on sql-prod-1) has column keys its database master key protects: once the
-- database is restored, this instance's service master key opens it (run this
-- file again after the restore if it was not there yet; on an availability
-- group secondary, sp_control_dbmasterkey_password gives the instance the
-- password instead).
-- DMK_PASSWORD_HR: keyplane secret get --chain dbm --name dbm.dmk.HR
IF DATABASEPROPERTYEX(N'HR', 'Status') IS NULL
   OR DATABASEPROPERTYEX(N'HR', 'Status') <> 'ONLINE'
   OR DATABASEPROPERTYEX(N'HR', 'Updateability') <> 'READ_WRITE'
    PRINT 'keyplane: database HR is not restored, online and writable here yet';
ELSE
    EXEC (N'USE [HR];
        OPEN MASTER KEY DECRYPTION BY PASSWORD = ''$(DMK_PASSWORD_HR)'';
        ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY;
        CLOSE MASTER KEY;');
GO

-- Checks: the certificate is here with its private key, every TDE database is
-- linked to a certificate this instance holds, and each database master key
-- re-encrypted above opens by itself (is_master_key_encrypted_by_server 1).
USE master;
GO
SELECT name, subject, expiry_date, thumbprint, pvt_key_encryption_type_desc
FROM sys.certificates WHERE thumbprint = 0x9E00202C7055170AE891B333E15DBDC62C568326;
GO
SELECT db.name, db.is_encrypted, ek.encryption_state, ek.key_algorithm,
       c.name AS cert_name, ek.encryptor_thumbprint
FROM sys.databases db
LEFT JOIN sys.dm_database_encryption_keys ek ON db.database_id = ek.database_id
LEFT JOIN master.sys.certificates c ON ek.encryptor_thumbprint = c.thumbprint;
GO
SELECT name, is_master_key_encrypted_by_server
FROM sys.databases WHERE name IN (N'HR');
GO
