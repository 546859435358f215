global using System.Net;
global using System.Net.Sockets;
global using Uring.Native;
global using Uring.Native.Interop;
global using Uring.Native.IoUring;
global using Xunit;
global using Xunit.Abstractions;
global using Uring.Tests;
